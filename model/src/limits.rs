//! Kafka's size limits, as one set of rules the broker and the producer share.
//!
//! - `message.max.bytes` (broker, default 1 MiB): the largest produce batch the leader
//!   appends; a larger one is refused with `MESSAGE_TOO_LARGE` (non-retriable). The producer
//!   never builds a batch beyond it, and refuses a single record that does not fit on its own
//!   with `RECORD_TOO_LARGE` before giving it a sequence number (Kafka's producer checks
//!   `max.request.size` in `send()`), so the record is never sent.
//! - `replica.fetch.max.bytes` (follower fetches, default 1 MiB) and `fetch.max.bytes`
//!   (consumer fetches): a fetch response holds records up to that many bytes, but always at
//!   least one record, so a fetcher makes progress past a record larger than the limit.
//!   Kafka carries these in each fetch request; here every process of a cluster shares the
//!   configuration, so the leader applies them directly.
//!
//! In the model checker every limit is [`SizeLimits::UNLIMITED`], and these rules never cut
//! anything: the model's values are a few bytes. That cannot change a verdict. A record the
//! producer refuses is never sent, appended, acknowledged or numbered (the next record takes
//! its sequence number), so a run with a refusal is a run in which the application never sent
//! that record. A fetch cut short by bytes is a prefix of what the leader held, which is what a
//! fetch answered before the rest was appended would carry; the follower fetches the rest next.

use crate::log::Log;
use crate::types::{Offset, Value};
use serde::{Deserialize, Serialize};

/// Bytes a record costs beyond its value: the least that Kafka's RecordBatch v2 spends on one
/// record (its length, attributes, timestamp and offset deltas, key length, value length and
/// header count: one varint byte each; leader epoch, producer id and sequence sit in the
/// batch's header). Counting no more than Kafka's encoding does means a batch Kafka takes is
/// never refused here: with 16 (the earlier figure), librdkafka's default batches of 100-byte
/// records (`batch.size` 1,000,000 encoded bytes) came back `MESSAGE_TOO_LARGE`
/// (`impl/tests/kafka_clients.rs`, `librdkafka_default_batches_are_not_refused_as_too_large`).
/// A batch can count up to a few bytes per record less than its encoding, so one slightly
/// above `message.max.bytes` may be taken.
pub const RECORD_OVERHEAD_BYTES: usize = 7;

/// The byte limits of one cluster (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SizeLimits {
    /// `message.max.bytes`: the largest produce request's records, in bytes.
    pub message_bytes_max: usize,
    /// `replica.fetch.max.bytes`: the most record bytes in a follower's fetch response.
    pub replica_fetch_bytes_max: usize,
    /// `fetch.max.bytes`: the most record bytes in a consumer's fetch response.
    pub fetch_bytes_max: usize,
}

impl SizeLimits {
    /// The model checker's: nothing is ever cut.
    pub const UNLIMITED: SizeLimits = SizeLimits {
        message_bytes_max: usize::MAX,
        replica_fetch_bytes_max: usize::MAX,
        fetch_bytes_max: usize::MAX,
    };

    /// Kafka's defaults: `message.max.bytes` is 1,048,588 (1 MiB and 12 bytes),
    /// `replica.fetch.max.bytes` 1 MiB;
    /// `fetch.max.bytes` (50 MiB in Kafka) is 1 MiB here, so a consumer's fetch response fits
    /// one frame of the engine's wire.
    pub const KAFKA: SizeLimits = SizeLimits {
        message_bytes_max: 1_048_588,
        replica_fetch_bytes_max: 1024 * 1024,
        fetch_bytes_max: 1024 * 1024,
    };
}

/// The bytes a record with `value` costs against the limits.
pub fn record_bytes(value: &Value) -> usize {
    let value_bytes = match value {
        Value::Numbered(_) => 4,
        Value::Bytes(b) => b.len(),
    };
    value_bytes.saturating_add(RECORD_OVERHEAD_BYTES)
}

/// Where a fetch from `from` ends: at most `records_max` records and `bytes_max` bytes of them
/// (Kafka's `replica.fetch.max.bytes` for followers, `fetch.max.bytes` for consumers), never
/// past `upto`, and always at least one record when there is one, as Kafka returns the first
/// batch whole even when it is larger than the limit, so the fetcher makes progress.
pub fn fetch_end(
    log: &Log,
    from: Offset,
    upto: Offset,
    records_max: usize,
    bytes_max: usize,
) -> Offset {
    let upto = upto.min(log.log_end_offset()).min(from.plus(records_max));
    let mut end = from;
    let mut bytes = 0usize;
    while end < upto {
        let Some(record) = log.get(end) else { break };
        bytes = bytes.saturating_add(record_bytes(&record.value));
        if end > from && bytes > bytes_max {
            break;
        }
        end = end.plus(1);
    }
    end
}

/// Whether a produce request's records fit `message.max.bytes`.
pub fn produce_fits(values: impl IntoIterator<Item = usize>, message_bytes_max: usize) -> bool {
    values
        .into_iter()
        .try_fold(0usize, |total, bytes| {
            let total = total.saturating_add(bytes);
            (total <= message_bytes_max).then_some(total)
        })
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Epoch, Record};

    fn log_of(sizes: &[usize]) -> Log {
        let mut log = Log::new();
        for &n in sizes {
            log.append(Record {
                value: Value::Bytes(vec![0u8; n].into()),
                leader_epoch: Epoch::INITIAL,
                producer: None,
            });
        }
        log
    }

    /// The engine's limits are Kafka's documented defaults (`message.max.bytes` 1,048,588,
    /// `replica.fetch.max.bytes` 1,048,576), and a consumer's fetch fits one 1 MiB response.
    #[test]
    fn the_engines_limits_are_kafkas_defaults() {
        assert_eq!(SizeLimits::KAFKA.message_bytes_max, 1_048_588);
        assert_eq!(SizeLimits::KAFKA.replica_fetch_bytes_max, 1_048_576);
        assert_eq!(SizeLimits::KAFKA.fetch_bytes_max, 1_048_576);
    }

    #[test]
    fn a_fetch_stops_at_its_byte_limit_but_carries_at_least_one_record() {
        let log = log_of(&[100, 100, 100, 5000, 100]);
        let per = 100 + RECORD_OVERHEAD_BYTES;
        assert_eq!(
            fetch_end(&log, Offset(0), Offset(5), 10, 2 * per),
            Offset(2)
        );
        assert_eq!(
            fetch_end(&log, Offset(0), Offset(5), 10, 2 * per + 1),
            Offset(2)
        );
        assert_eq!(
            fetch_end(&log, Offset(0), Offset(5), 1, usize::MAX),
            Offset(1)
        );
        // A record larger than the limit still goes, alone.
        assert_eq!(fetch_end(&log, Offset(3), Offset(5), 10, per), Offset(4));
        // Never past the high watermark or the log's end.
        assert_eq!(
            fetch_end(&log, Offset(0), Offset(2), 10, usize::MAX),
            Offset(2)
        );
        assert_eq!(
            fetch_end(&log, Offset(4), Offset(9), 10, usize::MAX),
            Offset(5)
        );
        assert_eq!(
            fetch_end(&log, Offset(5), Offset(9), 10, usize::MAX),
            Offset(5)
        );
    }

    #[test]
    fn a_produce_fits_only_within_message_max_bytes() {
        assert!(produce_fits([10, 20], 30));
        assert!(!produce_fits([10, 21], 30));
        assert!(produce_fits([], 0));
        // Unlimited (the model's) never refuses, whatever the sizes add up to.
        assert!(produce_fits(
            [usize::MAX, 1],
            SizeLimits::UNLIMITED.message_bytes_max
        ));
    }
}
