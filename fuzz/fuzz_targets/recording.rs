//! Any bytes through the decoder that cuts long recordings into pieces, as each format it
//! claims: samples or a clean error, never a panic.
#![no_main]

use aurora_actors::ingest::media::pieces::decode;
use libfuzzer_sys::fuzz_target;

const KINDS: [&str; 5] = [
    "audio/wav",
    "audio/mpeg",
    "audio/mp4",
    "audio/flac",
    "audio/ogg",
];

fuzz_target!(|bytes: &[u8]| {
    let Some((&pick, rest)) = bytes.split_first() else {
        return;
    };
    let mime = KINDS[usize::from(pick) % KINDS.len()];
    let _ = decode(rest.to_vec(), mime, 600);
});
