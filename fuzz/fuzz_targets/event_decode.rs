//! Event decoding as the pipeline does it (outbox rows, Kafka records): arbitrary bytes are
//! decoded, or refused with an error, and never panic; a decoded `StateCommitted` turns into a
//! projection row or a refusal; what decodes re-encodes to bytes that decode the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use purereducer_api::v1;

fuzz_target!(|data: &[u8]| {
    let Ok(published) = reducerd::projection::decode(data) else {
        return;
    };
    if let Some(v1::event::Kind::StateCommitted(committed)) = &published.event.kind {
        let _ = reducerd::projection::row_of(committed);
    }
    let encoded = published.event.encode_to_vec();
    let again = v1::Event::decode(encoded.as_slice()).expect("re-encoded event decodes");
    assert_eq!(again, published.event);
});
