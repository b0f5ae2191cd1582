//! What each service does with an event: pure functions from an incoming event to the
//! events it publishes, with no bus, clock or tracing in them.

use serde::{Deserialize, Serialize};

use crate::catalog::{
    INVENTORY_REJECTED_V1, INVENTORY_RELEASED_V1, INVENTORY_RESERVED_V1, ORDER_CANCELLED_V1,
    ORDER_PLACED_V1, ORDER_PLACED_V2, PAYMENT_COMPLETED_V1, PAYMENT_FAILED_V1,
    SHIPMENT_DISPATCHED_V1, Service, order_id,
};

/// The card number the payment service always declines (a well-known test card).
pub const DECLINED_CARD: &str = "4000000000000002";
/// A card the payment service accepts.
pub const GOOD_CARD: &str = "4242424242424242";
/// The most units of one item the warehouse holds.
pub const STOCK_PER_SKU: u32 = 5;
/// Items the shop sells.
pub const SKUS: [&str; 4] = ["kettle", "teapot", "mug", "tea-tin"];

/// An order as `order.placed.v1` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderV1 {
    /// The order (and correlation) ID.
    pub order_id: String,
    /// The item.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// Price in cents.
    pub amount_cents: i64,
    /// The card to charge.
    pub card: String,
}

/// An amount with its currency (schema version 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Amount in the currency's minor unit.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
}

/// An order as `order.placed.v2` carries it: the total became a money object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderV2 {
    /// The order (and correlation) ID.
    pub order_id: String,
    /// The item.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// The total.
    pub total: Money,
    /// The card to charge.
    pub card: String,
}

/// A step of the saga after the order was placed: the order plus why, when it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaStep {
    /// The order as placed.
    pub order: OrderV1,
    /// Why the step failed, for rejections, declines and cancellations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An event a handler publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Its CloudEvents type; the topic follows from it.
    pub event_type: &'static str,
    /// The key (the order ID, so one order's events keep their order).
    pub key: String,
    /// The JSON body.
    pub payload: Vec<u8>,
}

/// Why a handler could not process an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The body is not the JSON its event type promises.
    #[error("cannot parse {event_type} payload: {source}")]
    BadPayload {
        /// The event type.
        event_type: String,
        /// The parser's complaint.
        source: serde_json::Error,
    },
}

/// What the order service needs to know to write one order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderShape {
    /// Pay with the card that is always declined.
    pub declined_card: bool,
    /// Write a body nobody can parse.
    pub poison: bool,
    /// Publish with schema version 2.
    pub v2: bool,
}

/// The order with number `number`: its event type and body. Deterministic, so runs repeat.
pub fn place_order(number: u64, shape: OrderShape) -> (&'static str, Vec<u8>) {
    let order = OrderV1 {
        order_id: order_id(number),
        sku: SKUS[(number % SKUS.len() as u64) as usize].to_owned(),
        quantity: 1 + (number % 3) as u32,
        amount_cents: 1_250 + (number % 7) as i64 * 375,
        card: if shape.declined_card {
            DECLINED_CARD
        } else {
            GOOD_CARD
        }
        .to_owned(),
    };
    let event_type = if shape.v2 {
        ORDER_PLACED_V2
    } else {
        ORDER_PLACED_V1
    };
    if shape.poison {
        // A truncated body with a byte that is not UTF-8: what a broken producer sends.
        let mut body = format!("{{\"order_id\":\"{}\",\"sku\":", order.order_id).into_bytes();
        body.push(0xff);
        return (event_type, body);
    }
    let body = if shape.v2 {
        serde_json::to_vec(&OrderV2 {
            order_id: order.order_id,
            sku: order.sku,
            quantity: order.quantity,
            total: Money {
                amount_minor: order.amount_cents,
                currency: "EUR".to_owned(),
            },
            card: order.card,
        })
    } else {
        serde_json::to_vec(&order)
    };
    // Serialising plain structs of strings and integers cannot fail.
    (event_type, body.unwrap_or_default())
}

/// Runs `service`'s handler for one event and returns what it publishes.
pub fn handle(
    service: Service,
    event_type: &str,
    payload: &[u8],
) -> Result<Vec<Outgoing>, HandlerError> {
    let step = |next: &'static str, order: OrderV1, reason: Option<&str>| {
        let key = order.order_id.clone();
        let body = SagaStep {
            order,
            reason: reason.map(str::to_owned),
        };
        Outgoing {
            event_type: next,
            key,
            payload: serde_json::to_vec(&body).unwrap_or_default(),
        }
    };
    let outgoing = match (service, event_type) {
        (Service::OrderBridge, ORDER_PLACED_V2) => {
            let v2: OrderV2 = parse(event_type, payload)?;
            let v1 = OrderV1 {
                order_id: v2.order_id,
                sku: v2.sku,
                quantity: v2.quantity,
                amount_cents: v2.total.amount_minor,
                card: v2.card,
            };
            let key = v1.order_id.clone();
            vec![Outgoing {
                event_type: ORDER_PLACED_V1,
                key,
                payload: serde_json::to_vec(&v1).unwrap_or_default(),
            }]
        }
        (Service::Inventory, ORDER_PLACED_V1) => {
            let order: OrderV1 = parse(event_type, payload)?;
            if order.quantity > STOCK_PER_SKU {
                vec![step(INVENTORY_REJECTED_V1, order, Some("out of stock"))]
            } else {
                vec![step(INVENTORY_RESERVED_V1, order, None)]
            }
        }
        (Service::Inventory, PAYMENT_FAILED_V1) => {
            let failed: SagaStep = parse(event_type, payload)?;
            vec![step(
                INVENTORY_RELEASED_V1,
                failed.order,
                Some("payment failed"),
            )]
        }
        (Service::Payment, INVENTORY_RESERVED_V1) => {
            let reserved: SagaStep = parse(event_type, payload)?;
            if reserved.order.card == DECLINED_CARD {
                vec![step(
                    PAYMENT_FAILED_V1,
                    reserved.order,
                    Some("card declined"),
                )]
            } else {
                vec![step(PAYMENT_COMPLETED_V1, reserved.order, None)]
            }
        }
        (Service::Shipping, PAYMENT_COMPLETED_V1) => {
            let paid: SagaStep = parse(event_type, payload)?;
            vec![step(SHIPMENT_DISPATCHED_V1, paid.order, None)]
        }
        (Service::Order, INVENTORY_REJECTED_V1 | PAYMENT_FAILED_V1) => {
            let failed: SagaStep = parse(event_type, payload)?;
            let reason = failed.reason.clone();
            vec![step(ORDER_CANCELLED_V1, failed.order, reason.as_deref())]
        }
        (Service::Notification, SHIPMENT_DISPATCHED_V1 | ORDER_CANCELLED_V1) => {
            // Reads the body to write the customer an e-mail; publishes nothing.
            let _: SagaStep = parse(event_type, payload)?;
            Vec::new()
        }
        _ => Vec::new(),
    };
    Ok(outgoing)
}

fn parse<'a, T: Deserialize<'a>>(event_type: &str, payload: &'a [u8]) -> Result<T, HandlerError> {
    serde_json::from_slice(payload).map_err(|source| HandlerError::BadPayload {
        event_type: event_type.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
