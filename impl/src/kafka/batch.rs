//! RecordBatch v2 (KIP-98's message format) <-> the model's records.
//!
//! The listener takes one uncompressed batch per partition in a produce request, as Kafka
//! requires since produce v3 (KIP-98: "exactly one record batch"), and answers fetches with
//! batches it encodes (CRC-32C over each batch, as the format says). The model's record holds
//! a value, the leader epoch it was appended in and, for an idempotent producer, its producer
//! id and sequence number; a Kafka record's key, headers and timestamp have no place in it and
//! are dropped (fetched records carry no key and timestamp 0).
//!
//! Before the `kafka-protocol` decoder sees a batch, [`check_batch`] walks it: the decoder
//! reserves memory by the record and header counts written in the batch, and a count the
//! bytes cannot hold would ask for an allocation that fails (Rust aborts on that). The walk
//! refuses such counts, and anything else malformed, with `CORRUPT_MESSAGE`.

use bytes::{Bytes, BytesMut};
use insync_model::msg::ProducerRecord;
use insync_model::types::{Offset, ProducerId, Record, Sequence, Value};
use kafka_protocol::records::{
    Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Bytes of a v2 batch header, from the base offset to the record count.
const BATCH_HEADER_BYTES: usize = 61;
/// The smallest record: length, attributes, timestamp delta, offset delta, key length, value
/// length and header count, one byte each.
const RECORD_BYTES_MIN: usize = 7;

/// Why a produced batch is refused, as Kafka's error codes name it.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchError {
    /// `CORRUPT_MESSAGE` (2): bad CRC, bad lengths, anything that does not parse.
    Corrupt(String),
    /// `UNSUPPORTED_FOR_MESSAGE_FORMAT` (43): magic 0 or 1 (message sets before KIP-98).
    OldFormat,
    /// `UNSUPPORTED_COMPRESSION_TYPE` (76): the listener takes uncompressed batches only.
    Compressed,
    /// `INVALID_RECORD` (87): more or less than one batch, no records, transactional or
    /// control batches (no transactions here), a producer id no `InitProducerId` gave.
    Invalid(String),
}

impl BatchError {
    pub fn code(&self) -> i16 {
        match self {
            BatchError::Corrupt(_) => 2,
            BatchError::OldFormat => 43,
            BatchError::Compressed => 76,
            BatchError::Invalid(_) => 87,
        }
    }
}

/// What a produce request's batch asks the leader to append.
#[derive(Debug)]
pub struct ProducedBatch {
    /// The idempotent producer's id (KIP-98), `None` without idempotence (producer id -1).
    pub producer: Option<ProducerId>,
    pub records: Vec<ProducerRecord>,
}

/// Reads a zig-zag varint (Kafka's record fields) at `at`, moving `at` past it.
fn varint(bytes: &[u8], at: &mut usize) -> Result<i64, BatchError> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let Some(&b) = bytes.get(*at) else {
            return Err(BatchError::Corrupt("a varint runs past the batch".into()));
        };
        *at += 1;
        if shift >= 64 {
            return Err(BatchError::Corrupt("a varint is too long".into()));
        }
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(BatchError::Corrupt("a varint is too long".into()))
}

/// Skips a length-prefixed field (-1 is null).
fn skip_field(bytes: &[u8], at: &mut usize) -> Result<(), BatchError> {
    let len = varint(bytes, at)?;
    if len < -1 {
        return Err(BatchError::Corrupt(format!("a field length is {len}")));
    }
    let len = len.max(0) as usize;
    if bytes.len() - *at < len {
        return Err(BatchError::Corrupt("a field runs past its record".into()));
    }
    *at += len;
    Ok(())
}

/// Walks one uncompressed v2 batch's layout (see the module doc): exactly one batch, record
/// and header counts that its bytes can hold, every record within its length.
pub fn check_batch(data: &[u8]) -> Result<(), BatchError> {
    if data.len() < BATCH_HEADER_BYTES {
        return Err(BatchError::Corrupt(format!(
            "{} bytes is shorter than a batch header",
            data.len()
        )));
    }
    let magic = data[16] as i8;
    if magic < 2 {
        return Err(BatchError::OldFormat);
    }
    if magic > 2 {
        return Err(BatchError::Corrupt(format!("unknown batch magic {magic}")));
    }
    let batch_length = i32::from_be_bytes([data[8], data[9], data[10], data[11]]);
    if batch_length < 0 || 12 + batch_length as usize != data.len() {
        return Err(BatchError::Invalid(
            "a produce request carries exactly one record batch per partition (KIP-98)".into(),
        ));
    }
    let attributes = i16::from_be_bytes([data[21], data[22]]);
    if attributes & 0x7 != 0 {
        return Err(BatchError::Compressed);
    }
    if attributes & (1 << 4) != 0 || attributes & (1 << 5) != 0 {
        return Err(BatchError::Invalid(
            "transactional and control batches are not supported".into(),
        ));
    }
    let count = i32::from_be_bytes([data[57], data[58], data[59], data[60]]);
    let body = &data[BATCH_HEADER_BYTES..];
    if count <= 0 || count as usize > body.len() / RECORD_BYTES_MIN {
        return Err(BatchError::Invalid(format!(
            "{count} records cannot fit {} bytes",
            body.len()
        )));
    }
    let mut at = 0usize;
    for _ in 0..count {
        let len = varint(body, &mut at)?;
        if len < (RECORD_BYTES_MIN - 1) as i64 || len as usize > body.len() - at {
            return Err(BatchError::Corrupt(format!("a record length of {len}")));
        }
        let record = &body[at..at + len as usize];
        at += len as usize;
        let mut r = 1usize; // attributes
        varint(record, &mut r)?; // timestamp delta
        varint(record, &mut r)?; // offset delta
        skip_field(record, &mut r)?; // key
        skip_field(record, &mut r)?; // value
        let headers = varint(record, &mut r)?;
        if headers < 0 || headers as usize > (record.len() - r) / 2 {
            return Err(BatchError::Corrupt(format!("{headers} headers")));
        }
        for _ in 0..headers {
            skip_field(record, &mut r)?;
            skip_field(record, &mut r)?;
        }
        if r != record.len() {
            return Err(BatchError::Corrupt(
                "a record's fields and length disagree".into(),
            ));
        }
    }
    if at != body.len() {
        return Err(BatchError::Corrupt("bytes after the last record".into()));
    }
    Ok(())
}

/// Decodes a produce request's records for one partition into what the model's leader
/// appends: the values, and (idempotent producer, KIP-98) the producer id and each record's
/// sequence number, base sequence plus its place in the batch.
pub fn decode_produced(data: &Bytes) -> Result<ProducedBatch, BatchError> {
    check_batch(data)?;
    let mut buf = data.clone();
    let set =
        RecordBatchDecoder::decode(&mut buf).map_err(|e| BatchError::Corrupt(e.to_string()))?;
    if set.compression != Compression::None {
        return Err(BatchError::Compressed);
    }
    let Some(first) = set.records.first() else {
        return Err(BatchError::Invalid("an empty batch".into()));
    };
    let producer = match first.producer_id {
        -1 => None,
        id => match u32::try_from(id) {
            Ok(id) => Some(ProducerId(id)),
            Err(_) => {
                return Err(BatchError::Invalid(format!(
                    "producer id {id} was not given by InitProducerId"
                )))
            }
        },
    };
    let mut records = Vec::with_capacity(set.records.len());
    for r in &set.records {
        let sequence = match (producer, u32::try_from(r.sequence)) {
            (None, _) => Sequence(0),
            (Some(_), Ok(s)) => Sequence(s),
            (Some(_), Err(_)) => {
                return Err(BatchError::Invalid(format!(
                    "an idempotent record with sequence {}",
                    r.sequence
                )))
            }
        };
        let value = r.value.clone().unwrap_or_default();
        records.push(ProducerRecord {
            value: Value::Bytes(value.to_vec().into()),
            sequence,
        });
    }
    Ok(ProducedBatch { producer, records })
}

/// Encodes records of the log, the first at `base`, as RecordBatch v2 for a fetch response:
/// each record keeps its leader epoch and, when idempotent, its producer id and sequence.
pub fn encode_fetched(base: Offset, records: &[Record]) -> anyhow::Result<Bytes> {
    // The encoder puts consecutive records in one batch when their offsets and sequences
    // advance together; a run of plain records (base sequence -1) is numbered -1, 0, 1, ...
    // from its start so that it becomes one batch too.
    let mut run_start = 0usize;
    let records: Vec<kafka_protocol::records::Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let continues = i > 0
                && r.producer.is_none()
                && records[i - 1].producer.is_none()
                && records[i - 1].leader_epoch == r.leader_epoch;
            if !continues {
                run_start = i;
            }
            let plain_sequence = (i - run_start) as i32 - 1;
            let value = match &r.value {
                Value::Bytes(b) => Bytes::copy_from_slice(b),
                Value::Numbered(n) => Bytes::from(format!("v{n}")),
            };
            kafka_protocol::records::Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: r.leader_epoch.0 as i32,
                producer_id: r.producer.map_or(-1, |(p, _)| i64::from(p.0)),
                producer_epoch: if r.producer.is_some() { 0 } else { -1 },
                timestamp_type: TimestampType::Creation,
                offset: base.0 as i64 + i as i64,
                sequence: r.producer.map_or(plain_sequence, |(_, s)| s.0 as i32),
                timestamp: 0,
                key: None,
                value: Some(value),
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use insync_model::types::Epoch;

    fn produced(pid: i64, base_sequence: i32, values: &[&str]) -> Bytes {
        let records: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| kafka_protocol::records::Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: if pid >= 0 { 0 } else { -1 },
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // A plain batch's base sequence is -1 (the encoder derives it from the first).
                sequence: if pid >= 0 { base_sequence } else { -1 } + i as i32,
                timestamp: 7,
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from(v.to_string())),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("encodes");
        buf.freeze()
    }

    #[test]
    fn an_idempotent_batch_carries_its_producer_id_and_sequences() {
        let batch = decode_produced(&produced(70000, 5, &["a", "b", "c"])).expect("decodes");
        assert_eq!(batch.producer, Some(ProducerId(70000)));
        let sequences: Vec<u32> = batch.records.iter().map(|r| r.sequence.0).collect();
        assert_eq!(sequences, vec![5, 6, 7]);
        assert_eq!(batch.records[2].value, Value::Bytes(b"c".to_vec().into()));
        let plain = decode_produced(&produced(-1, 0, &["x"])).expect("decodes");
        assert_eq!(plain.producer, None);
    }

    #[test]
    fn damaged_batches_are_refused_with_kafkas_codes() {
        let good = produced(-1, 0, &["a", "b"]);
        // A flipped byte in the records: the CRC-32C no longer matches.
        let mut bad = good.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(decode_produced(&Bytes::from(bad)).unwrap_err().code(), 2);
        // Two batches in one partition's records.
        let mut two = good.to_vec();
        two.extend_from_slice(&good);
        assert_eq!(decode_produced(&Bytes::from(two)).unwrap_err().code(), 87);
        // A record count the bytes cannot hold (the decoder would reserve memory for it).
        let mut huge = good.to_vec();
        huge[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(decode_produced(&Bytes::from(huge)).unwrap_err().code(), 87);
        // Compressed (gzip) and old-format batches.
        let mut gzip = good.to_vec();
        gzip[22] |= 1;
        assert_eq!(decode_produced(&Bytes::from(gzip)).unwrap_err().code(), 76);
        let mut old = good.to_vec();
        old[16] = 1;
        assert_eq!(decode_produced(&Bytes::from(old)).unwrap_err().code(), 43);
        // Truncated anywhere: never a panic.
        for cut in 0..good.len() {
            assert!(decode_produced(&good.slice(..cut)).is_err());
        }
    }

    #[test]
    fn fetched_records_decode_back_with_offsets_epochs_and_sequences() {
        let records = vec![
            Record {
                value: Value::Bytes(b"one".to_vec().into()),
                leader_epoch: Epoch(3),
                producer: Some((ProducerId(70000), Sequence(0))),
            },
            Record {
                value: Value::Bytes(b"two".to_vec().into()),
                leader_epoch: Epoch(4),
                producer: None,
            },
        ];
        let mut bytes = encode_fetched(Offset(10), &records).expect("encodes");
        let sets = RecordBatchDecoder::decode_all(&mut bytes).expect("decodes");
        let all: Vec<_> = sets.into_iter().flat_map(|s| s.records).collect();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].offset, all[0].partition_leader_epoch), (10, 3));
        assert_eq!((all[0].producer_id, all[0].sequence), (70000, 0));
        assert_eq!((all[1].offset, all[1].partition_leader_epoch), (11, 4));
        assert_eq!(all[1].value.as_deref(), Some(&b"two"[..]));
        // Plain records of one epoch travel as one batch.
        let plain: Vec<Record> = (0..5)
            .map(|i| Record {
                value: Value::Bytes(vec![i].into()),
                leader_epoch: Epoch(2),
                producer: None,
            })
            .collect();
        let mut bytes = encode_fetched(Offset(0), &plain).expect("encodes");
        let sets = RecordBatchDecoder::decode_all(&mut bytes).expect("decodes");
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].records.len(), 5);
        assert_eq!(sets[0].records[4].offset, 4);
    }
}
