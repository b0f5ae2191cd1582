//! Every committed offset of consumer groups without naming their topics: librdkafka's
//! `ListConsumerGroupOffsets` with no partition list, which sends `OffsetFetch` with a null
//! topic array (version 2 and later) so the broker answers for every partition the group
//! committed on. rdkafka 0.39 wraps neither this admin call nor any way to it (its
//! `committed_offsets` needs the partitions named, and with an empty list librdkafka
//! answers empty without asking the broker), so this module is the workspace's one use of
//! `unsafe`: calls through `rdkafka::bindings`, each with its reason. What the answer
//! means is decided in `offset_fetch.rs`, which has no unsafe code.
//!
//! Two librdkafka traits shape it:
//! - `ListConsumerGroupOffsets` takes exactly one group per call, so a cycle issues one
//!   call per group on one result queue, all in flight at once, and tells the answers
//!   apart by the index each request carries as its opaque.
//! - The client must be a consumer with a `group.id`: on a `NOT_COORDINATOR` answer
//!   librdkafka 2.12 asks the client's own group handle to look the coordinator up again,
//!   and a client without a group has none (a NULL dereference; librdkafka issue 5040).
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::lag::offset_fetch::FetchedPartition;

/// How long past the request timeout the answers are waited for: librdkafka reports a
/// timed-out request itself, a moment after its timeout.
const ANSWER_GRACE: Duration = Duration::from_millis(500);

/// A group whose committed offsets could not be fetched at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot fetch the committed offsets of consumer group {group}: {reason}")]
pub struct GroupFetchError {
    /// The group.
    pub group: String,
    /// librdkafka's or the broker's reason.
    pub reason: String,
}

// librdkafka's error codes read as the C `int`s they are: the bindings type them as a Rust
// enum, and a code this build does not list (a newer broker's) is no valid value of it.
unsafe extern "C" {
    #[link_name = "rd_kafka_event_error"]
    fn event_error_code(event: *mut rd::rd_kafka_event_t) -> c_int;
    #[link_name = "rd_kafka_error_code"]
    fn error_code(error: *const rd::rd_kafka_error_t) -> c_int;
    #[link_name = "rd_kafka_err2str"]
    fn code_text(code: c_int) -> *const c_char;
}

/// The text librdkafka gives an error code (it names unknown codes too).
pub fn error_text(code: i32) -> String {
    // SAFETY: rd_kafka_err2str accepts any code and returns a static NUL-terminated string.
    unsafe { c_text(code_text(code)) }
}

/// Fetches every committed offset of each group in `groups` through `client` (a consumer
/// with a `group.id`, see the module header), waiting at most `timeout` (and a short
/// grace) in all. Answers come in the order of `groups`.
pub fn fetch_all_committed(
    client: &BaseConsumer,
    groups: &[String],
    timeout: Duration,
) -> Vec<Result<Vec<FetchedPartition>, GroupFetchError>> {
    let mut answers: Vec<Option<Result<Vec<FetchedPartition>, GroupFetchError>>> =
        groups.iter().map(|_| None).collect();
    let failed = |group: &str, reason: &str| GroupFetchError {
        group: group.to_owned(),
        reason: reason.to_owned(),
    };
    if groups.is_empty() {
        return Vec::new();
    }
    let handle = client.client().native_ptr();
    // SAFETY: `handle` is the live client `client` owns, and `client` outlives this call;
    // the queue is destroyed when `queue` drops, before this function returns.
    let queue = Queue(unsafe { rd::rd_kafka_queue_new(handle) });
    // SAFETY: as above; ListConsumerGroupOffsets is an admin operation these options are for.
    let options = Options(unsafe {
        rd::rd_kafka_AdminOptions_new(
            handle,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
        )
    });
    if queue.0.is_null() || options.0.is_null() {
        return groups
            .iter()
            .map(|group| Err(failed(group, "librdkafka could not set up the request")))
            .collect();
    }
    let timeout_ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
    let mut reason: [c_char; 256] = [0; 256];
    // SAFETY: `options` is live; `reason` is a writable buffer of the length passed. The
    // result is an error only for a timeout out of range, which `timeout_ms` is not; it is
    // ignored, librdkafka's default timeout then stands.
    let _ = unsafe {
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options.0,
            timeout_ms,
            reason.as_mut_ptr(),
            reason.len(),
        )
    };
    let mut pending = 0;
    for (index, group) in groups.iter().enumerate() {
        let Ok(name) = CString::new(group.as_str()) else {
            answers[index] = Some(Err(failed(group, "the group name holds a NUL byte")));
            continue;
        };
        // SAFETY: `name` is a NUL-terminated string that librdkafka copies; a null
        // partition list asks for every partition the group committed on.
        let request =
            unsafe { rd::rd_kafka_ListConsumerGroupOffsets_new(name.as_ptr(), std::ptr::null()) };
        if request.is_null() {
            answers[index] = Some(Err(failed(group, "librdkafka could not build the request")));
            continue;
        }
        let mut requests = [request];
        // SAFETY: `options` is live. The opaque is the group's index in `groups`, an
        // integer carried in a pointer and never dereferenced. The options are copied by
        // the call below, so changing the opaque for the next group does not change this
        // request's.
        unsafe {
            rd::rd_kafka_AdminOptions_set_opaque(options.0, std::ptr::without_provenance_mut(index))
        };
        // SAFETY: `handle`, `options` and `queue` are live; `requests` holds exactly the one
        // request the call requires, which librdkafka copies.
        unsafe {
            rd::rd_kafka_ListConsumerGroupOffsets(
                handle,
                requests.as_mut_ptr(),
                requests.len(),
                options.0,
                queue.0,
            )
        };
        // SAFETY: `request` came from ListConsumerGroupOffsets_new and is not used again.
        unsafe { rd::rd_kafka_ListConsumerGroupOffsets_destroy(request) };
        pending += 1;
    }
    let deadline = Instant::now() + timeout + ANSWER_GRACE;
    while pending > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let wait_ms = c_int::try_from(left.as_millis())
            .unwrap_or(c_int::MAX)
            .max(1);
        // SAFETY: `queue` is live; an event it returns is ours, destroyed when `event` drops.
        let event = Event(unsafe { rd::rd_kafka_queue_poll(queue.0, wait_ms) });
        if event.0.is_null() {
            continue;
        }
        // SAFETY: `event` is a live event.
        let kind = unsafe { rd::rd_kafka_event_type(event.0) };
        if kind != rd::RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT {
            continue;
        }
        // SAFETY: `event` is live; the opaque is the index set above, read back as an integer.
        let index = unsafe { rd::rd_kafka_event_opaque(event.0) }.addr();
        let (Some(slot), Some(group)) = (answers.get_mut(index), groups.get(index)) else {
            continue;
        };
        if slot.is_none() {
            *slot = Some(read_answer(&event, group));
            pending -= 1;
        }
    }
    answers
        .into_iter()
        .zip(groups)
        .map(|(answer, group)| {
            answer.unwrap_or_else(|| Err(failed(group, "no answer before the timeout")))
        })
        .collect()
}

/// Reads one `ListConsumerGroupOffsets` result event into rows.
fn read_answer(event: &Event, group: &str) -> Result<Vec<FetchedPartition>, GroupFetchError> {
    let failed = |reason: String| GroupFetchError {
        group: group.to_owned(),
        reason,
    };
    // SAFETY: `event` is a live ListConsumerGroupOffsets result event.
    let code = unsafe { event_error_code(event.0) };
    if code != 0 {
        // SAFETY: as above; the string lives as long as the event and is copied here.
        return Err(failed(unsafe {
            c_text(rd::rd_kafka_event_error_string(event.0))
        }));
    }
    // SAFETY: the event's type was checked to be a ListConsumerGroupOffsets result.
    let result = unsafe { rd::rd_kafka_event_ListConsumerGroupOffsets_result(event.0) };
    if result.is_null() {
        return Err(failed("the answer holds no result".into()));
    }
    let mut count = 0usize;
    // SAFETY: `result` is live as long as the event; `count` receives the array's length.
    let results =
        unsafe { rd::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut count) };
    if results.is_null() || count == 0 {
        return Err(failed("the answer names no group".into()));
    }
    // SAFETY: `results` points at `count` (at least one) group results, live as long as
    // the event. One group was asked for, so the first is its answer.
    let answer = unsafe { *results };
    if answer.is_null() {
        return Err(failed("the answer names no group".into()));
    }
    // SAFETY: `answer` is a live group result; its error, if any, lives as long as it.
    let error = unsafe { rd::rd_kafka_group_result_error(answer) };
    if !error.is_null() {
        // SAFETY: `error` is live; its string is copied here.
        let (code, text) = unsafe { (error_code(error), c_text(rd::rd_kafka_error_string(error))) };
        let text = if text.is_empty() {
            error_text(code)
        } else {
            text
        };
        return Err(failed(text));
    }
    // SAFETY: `answer` is a live group result; its list lives as long as it.
    let list = unsafe { rd::rd_kafka_group_result_partitions(answer) };
    if list.is_null() {
        return Ok(Vec::new());
    }
    // SAFETY: `list` is a live partition list: `elems` holds `cnt` elements.
    let (elements, count) = unsafe { ((*list).elems, (*list).cnt) };
    let count = usize::try_from(count).unwrap_or(0);
    if elements.is_null() {
        return Ok(Vec::new());
    }
    let mut rows = Vec::with_capacity(count);
    for index in 0..count {
        // SAFETY: `index < count`, so the element lies inside the list's array, which lives
        // as long as the event. The error is read as the C int it is (see `error_code`),
        // the topic copied from its NUL-terminated string.
        let row = unsafe {
            let element = elements.add(index);
            FetchedPartition {
                topic: c_text((*element).topic),
                partition: (*element).partition,
                offset: (*element).offset,
                error_code: (&raw const (*element).err).cast::<c_int>().read(),
            }
        };
        rows.push(row);
    }
    Ok(rows)
}

/// Copies a C string (lossily, should it not be UTF-8); a null pointer reads as empty.
///
/// # Safety
/// `text` is null or points at a NUL-terminated string live for the call.
unsafe fn c_text(text: *const c_char) -> String {
    if text.is_null() {
        return String::new();
    }
    // SAFETY: the caller guarantees a live NUL-terminated string.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// A librdkafka queue this module created.
struct Queue(*mut rd::rd_kafka_queue_t);

impl Drop for Queue {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the queue came from rd_kafka_queue_new and is destroyed once; requests
            // still in flight hold their own reference to it.
            unsafe { rd::rd_kafka_queue_destroy(self.0) };
        }
    }
}

/// Admin options this module created.
struct Options(*mut rd::rd_kafka_AdminOptions_t);

impl Drop for Options {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the options came from rd_kafka_AdminOptions_new and are destroyed once;
            // every request copied them.
            unsafe { rd::rd_kafka_AdminOptions_destroy(self.0) };
        }
    }
}

/// An event taken from a queue.
struct Event(*mut rd::rd_kafka_event_t);

impl Drop for Event {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the event came from rd_kafka_queue_poll and is destroyed once, after
            // everything read from it was copied.
            unsafe { rd::rd_kafka_event_destroy(self.0) };
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use rdkafka::ClientConfig;

    use super::*;

    /// A consumer with a group id whose bootstrap server refuses every connection (nothing
    /// listens on the port a moment after it was bound and released).
    fn unreachable_client() -> BaseConsumer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        ClientConfig::new()
            .set("bootstrap.servers", format!("127.0.0.1:{port}"))
            .set("group.id", "causeway-lag-test")
            .set("log_level", "0")
            .create()
            .unwrap()
    }

    #[test]
    fn no_groups_asks_nothing() {
        let client = unreachable_client();
        assert!(fetch_all_committed(&client, &[], Duration::from_secs(5)).is_empty());
    }

    #[test]
    fn an_unreachable_broker_fails_every_group_within_the_timeout() {
        let client = unreachable_client();
        let groups = vec![
            "billing".to_owned(),
            "bad\0name".to_owned(),
            "shipping".to_owned(),
        ];
        let started = Instant::now();
        let answers = fetch_all_committed(&client, &groups, Duration::from_millis(500));
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_millis(500) + ANSWER_GRACE + Duration::from_millis(500),
            "waited {waited:?}"
        );
        assert_eq!(answers.len(), 3);
        for (answer, group) in answers.iter().zip(&groups) {
            let error = answer.as_ref().expect_err("nothing can answer");
            assert_eq!(&error.group, group, "answers keep the order of the groups");
        }
        assert_eq!(
            answers[1].as_ref().unwrap_err().reason,
            "the group name holds a NUL byte"
        );
        assert!(
            !answers[0].as_ref().unwrap_err().reason.is_empty(),
            "{answers:?}"
        );
    }

    #[test]
    fn error_codes_read_as_text_even_unknown_ones() {
        // 16 is the protocol's NOT_COORDINATOR; 30_000 is no code at all.
        assert!(
            error_text(16).to_lowercase().contains("coordinator"),
            "{}",
            error_text(16)
        );
        assert!(!error_text(30_000).is_empty());
    }
}
