//! Unit tests of the shop's handlers: the saga's happy path, its compensations, the
//! schema bridge and the poison message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::catalog::topic_of;

/// Delivers `event` to every service subscribed to its topic, and what they publish to
/// theirs, until nothing more is published; returns the event types in publish order.
fn run_saga(event_type: &'static str, payload: Vec<u8>) -> Vec<&'static str> {
    let mut queue = vec![Outgoing {
        event_type,
        key: String::new(),
        payload,
    }];
    let mut published = Vec::new();
    while !queue.is_empty() {
        let event = queue.remove(0);
        published.push(event.event_type);
        for service in Service::ALL {
            if service.topics().contains(&topic_of(event.event_type)) {
                queue.extend(handle(service, event.event_type, &event.payload).unwrap());
            }
        }
    }
    published
}

#[test]
fn sagas_end_where_their_shape_says() {
    let cases: [(OrderShape, &[&str], &str); 3] = [
        (
            OrderShape::default(),
            &[
                ORDER_PLACED_V1,
                INVENTORY_RESERVED_V1,
                PAYMENT_COMPLETED_V1,
                SHIPMENT_DISPATCHED_V1,
            ],
            "happy path ships",
        ),
        (
            OrderShape {
                declined_card: true,
                ..OrderShape::default()
            },
            &[
                ORDER_PLACED_V1,
                INVENTORY_RESERVED_V1,
                PAYMENT_FAILED_V1,
                INVENTORY_RELEASED_V1,
                ORDER_CANCELLED_V1,
            ],
            "a declined card releases stock and cancels the order",
        ),
        (
            OrderShape {
                v2: true,
                ..OrderShape::default()
            },
            &[
                ORDER_PLACED_V2,
                ORDER_PLACED_V1,
                INVENTORY_RESERVED_V1,
                PAYMENT_COMPLETED_V1,
                SHIPMENT_DISPATCHED_V1,
            ],
            "the bridge turns v2 into v1 and the saga goes on",
        ),
    ];
    for (shape, expected, why) in cases {
        let (event_type, payload) = place_order(1042, shape);
        assert_eq!(run_saga(event_type, payload), expected, "{why}");
    }
}

#[test]
fn poison_fails_inventory_and_only_inventory() {
    let (event_type, payload) = place_order(
        7,
        OrderShape {
            poison: true,
            ..OrderShape::default()
        },
    );
    let error = handle(Service::Inventory, event_type, &payload).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot parse order.placed.v1 payload"),
        "{error}"
    );
    for service in [Service::Notification, Service::OrderBridge] {
        assert_eq!(
            handle(service, event_type, &payload).unwrap(),
            Vec::new(),
            "{service:?} ignores the type"
        );
    }
}

#[test]
fn orders_are_deterministic_and_keyed_by_order() {
    let (_, first) = place_order(1042, OrderShape::default());
    let (_, again) = place_order(1042, OrderShape::default());
    assert_eq!(first, again);
    let order: OrderV1 = serde_json::from_slice(&first).unwrap();
    assert_eq!(order.order_id, "ord-1042");
    assert!(order.quantity <= STOCK_PER_SKU);
    let out = handle(Service::Inventory, ORDER_PLACED_V1, &first).unwrap();
    assert_eq!(out[0].key, "ord-1042");
}

#[test]
fn too_many_units_are_rejected_and_cancelled() {
    let order = OrderV1 {
        order_id: "ord-9".into(),
        sku: "mug".into(),
        quantity: STOCK_PER_SKU + 1,
        amount_cents: 100,
        card: GOOD_CARD.into(),
    };
    let published = run_saga(ORDER_PLACED_V1, serde_json::to_vec(&order).unwrap());
    assert_eq!(
        published,
        [ORDER_PLACED_V1, INVENTORY_REJECTED_V1, ORDER_CANCELLED_V1]
    );
}
