//! The shop's names in one place: services, consumer groups, topics and event types.

/// Topic of order events (placed, cancelled).
pub const TOPIC_ORDERS: &str = "orders";
/// Topic of inventory events (reserved, rejected, released).
pub const TOPIC_INVENTORY: &str = "inventory";
/// Topic of payment events (completed, failed).
pub const TOPIC_PAYMENTS: &str = "payments";
/// Topic of shipment events.
pub const TOPIC_SHIPMENTS: &str = "shipments";
/// Dead-letter topic for order events nobody could process.
pub const TOPIC_ORDERS_DLQ: &str = "orders.dlq";

/// Every topic the shop uses, with its partition count.
pub const TOPICS: [(&str, i32); 5] = [
    (TOPIC_ORDERS, 3),
    (TOPIC_INVENTORY, 3),
    (TOPIC_PAYMENTS, 3),
    (TOPIC_SHIPMENTS, 3),
    (TOPIC_ORDERS_DLQ, 1),
];

/// A customer placed an order (schema version 1).
pub const ORDER_PLACED_V1: &str = "order.placed.v1";
/// A customer placed an order (schema version 2: amounts as money objects).
pub const ORDER_PLACED_V2: &str = "order.placed.v2";
/// The saga gave up on an order (compensation).
pub const ORDER_CANCELLED_V1: &str = "order.cancelled.v1";
/// Stock was set aside for an order.
pub const INVENTORY_RESERVED_V1: &str = "inventory.reserved.v1";
/// Not enough stock for an order.
pub const INVENTORY_REJECTED_V1: &str = "inventory.rejected.v1";
/// Stock set aside for an order was given back (compensation).
pub const INVENTORY_RELEASED_V1: &str = "inventory.released.v1";
/// The customer was charged.
pub const PAYMENT_COMPLETED_V1: &str = "payment.completed.v1";
/// The charge was declined.
pub const PAYMENT_FAILED_V1: &str = "payment.failed.v1";
/// The parcel left the warehouse.
pub const SHIPMENT_DISPATCHED_V1: &str = "shipment.dispatched.v1";

/// Schema URI prefix written as `ce_dataschema`.
pub const SCHEMA_BASE: &str = "https://schemas.causeway.dev/shop/";

/// Prefix of the shop's correlation IDs (`ord-1042`).
pub const ORDER_ID_PREFIX: &str = "ord-";
/// The first order number.
pub const FIRST_ORDER_NUMBER: u64 = 1000;

/// One service of the shop: its `service.name` and the consumer group it reads with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// Takes orders, cancels them when the saga fails.
    Order,
    /// Translates `order.placed.v2` back to v1 while consumers migrate.
    OrderBridge,
    /// Reserves and releases stock.
    Inventory,
    /// Charges customers.
    Payment,
    /// Dispatches parcels.
    Shipping,
    /// Tells customers what happened.
    Notification,
}

impl Service {
    /// Every service, in start order (consumers before the order generator).
    pub const ALL: [Service; 6] = [
        Service::Notification,
        Service::Shipping,
        Service::Payment,
        Service::Inventory,
        Service::OrderBridge,
        Service::Order,
    ];

    /// The OpenTelemetry `service.name`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Order => "order-service",
            Service::OrderBridge => "order-bridge",
            Service::Inventory => "inventory-service",
            Service::Payment => "payment-service",
            Service::Shipping => "shipping-service",
            Service::Notification => "notification-service",
        }
    }

    /// The consumer group the service reads with.
    pub fn group(self) -> &'static str {
        match self {
            Service::Order => "order",
            Service::OrderBridge => "order-bridge",
            Service::Inventory => "inventory",
            Service::Payment => "payment",
            Service::Shipping => "shipping",
            Service::Notification => "notification",
        }
    }

    /// The topics the service consumes.
    pub fn topics(self) -> &'static [&'static str] {
        match self {
            Service::Order => &[TOPIC_INVENTORY, TOPIC_PAYMENTS],
            Service::OrderBridge => &[TOPIC_ORDERS],
            Service::Inventory => &[TOPIC_ORDERS, TOPIC_PAYMENTS],
            Service::Payment => &[TOPIC_INVENTORY],
            Service::Shipping => &[TOPIC_PAYMENTS],
            Service::Notification => &[TOPIC_ORDERS, TOPIC_SHIPMENTS],
        }
    }

    /// The service whose consumer group is `group`, if any.
    pub fn from_group(group: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.group() == group)
    }
}

/// The topic an event type is published on.
pub fn topic_of(event_type: &str) -> &'static str {
    match event_type.split('.').next() {
        Some("inventory") => TOPIC_INVENTORY,
        Some("payment") => TOPIC_PAYMENTS,
        Some("shipment") => TOPIC_SHIPMENTS,
        _ => TOPIC_ORDERS,
    }
}

/// The `ce_dataschema` URI of an event type.
pub fn schema_of(event_type: &str) -> String {
    format!("{SCHEMA_BASE}{event_type}.json")
}

/// The correlation ID of order number `number`.
pub fn order_id(number: u64) -> String {
    format!("{ORDER_ID_PREFIX}{number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_map_to_their_topics() {
        let cases = [
            (ORDER_PLACED_V1, TOPIC_ORDERS, "orders by prefix"),
            (
                ORDER_PLACED_V2,
                TOPIC_ORDERS,
                "a new version stays on its topic",
            ),
            (
                ORDER_CANCELLED_V1,
                TOPIC_ORDERS,
                "compensation of the order",
            ),
            (
                INVENTORY_RELEASED_V1,
                TOPIC_INVENTORY,
                "compensation of the stock",
            ),
            (PAYMENT_FAILED_V1, TOPIC_PAYMENTS, "payments by prefix"),
            (
                SHIPMENT_DISPATCHED_V1,
                TOPIC_SHIPMENTS,
                "shipments by prefix",
            ),
        ];
        for (event_type, topic, why) in cases {
            assert_eq!(topic_of(event_type), topic, "{why}");
        }
    }

    #[test]
    fn groups_name_their_services() {
        for service in Service::ALL {
            assert_eq!(Service::from_group(service.group()), Some(service));
        }
        assert_eq!(Service::from_group("nobody"), None);
    }
}
