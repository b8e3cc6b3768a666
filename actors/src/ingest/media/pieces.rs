//! Long recordings in pieces. A recording longer than the engine's piece length is decoded
//! (symphonia), mixed to mono and resampled to 16 kHz (rubato) — what Whisper-family engines
//! work at anyway — and cut at the quietest moment before each piece boundary, so a cut falls
//! between words rather than through one. Each piece goes out as a 16-bit WAV: ten minutes are
//! 19.2 MB, under the 25 MB OpenAI-compatible servers accept, whatever the original format.

use std::io::Cursor;
use std::ops::Range;

use rubato::{
    Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction,
};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as MediaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Samples per second of the pieces.
pub const RATE: u32 = 16_000;
/// Resampler input block, in frames.
const BLOCK: usize = 4_096;
/// The loudness of a candidate cut is measured over 50 ms.
const FRAME: usize = RATE as usize / 20;

/// Why a recording could not be cut into pieces. The caller then sends it whole.
#[derive(Debug, thiserror::Error)]
pub enum PieceError {
    #[error("{0} cannot be decoded here")]
    Undecodable(String),
    #[error("the recording is longer than the {0} s allowed")]
    TooLong(u64),
}

/// Whether recordings of this media type can be decoded here (Opus in WebM cannot).
pub fn decodable(mime: &str) -> bool {
    matches!(
        mime,
        "audio/wav" | "audio/mpeg" | "audio/mp4" | "audio/flac" | "audio/ogg"
    )
}

/// The recording as 16 kHz mono samples, refusing one longer than `max_secs`.
pub fn decode(bytes: Vec<u8>, mime: &str, max_secs: u64) -> Result<Vec<i16>, PieceError> {
    let undecodable = |e: MediaError| PieceError::Undecodable(format!("{mime} ({e})"));
    let mut hint = Hint::new();
    hint.mime_type(mime);
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(undecodable)?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| PieceError::Undecodable(format!("{mime} (no audio track)")))?;
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(undecodable)?;
    let mut mono = Mono::default();
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(MediaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(MediaError::ResetRequired) => break,
            Err(e) => return Err(undecodable(e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            // A damaged packet costs its few milliseconds, not the recording.
            Err(MediaError::DecodeError(_) | MediaError::IoError(_)) => continue,
            Err(e) => return Err(undecodable(e)),
        };
        let spec = *decoded.spec();
        let mut buffer = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buffer.copy_interleaved_ref(decoded);
        mono.push(buffer.samples(), spec.channels.count().max(1), spec.rate)?;
        if mono.seconds() > max_secs as f64 {
            return Err(PieceError::TooLong(max_secs));
        }
    }
    mono.finish()
}

/// Decoded audio mixed to one channel, resampled to [`RATE`] block by block.
#[derive(Default)]
struct Mono {
    rate: u32,
    pending: Vec<f32>,
    resampler: Option<SincFixedIn<f32>>,
    /// Output frames still owed to the resampler's delay.
    skip: usize,
    input_frames: usize,
    out: Vec<i16>,
}

impl Mono {
    fn push(&mut self, interleaved: &[f32], channels: usize, rate: u32) -> Result<(), PieceError> {
        if self.rate == 0 {
            self.rate = rate;
            if rate != RATE {
                let resampler = SincFixedIn::<f32>::new(
                    f64::from(RATE) / f64::from(rate),
                    1.0,
                    SincInterpolationParameters {
                        sinc_len: 128,
                        f_cutoff: 0.95,
                        oversampling_factor: 128,
                        interpolation: SincInterpolationType::Linear,
                        window: WindowFunction::BlackmanHarris2,
                    },
                    BLOCK,
                    1,
                )
                .map_err(|e| PieceError::Undecodable(format!("{rate} Hz audio ({e})")))?;
                self.skip = resampler.output_delay();
                self.resampler = Some(resampler);
            }
        }
        self.input_frames += interleaved.len() / channels;
        self.pending.extend(
            interleaved
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() / channels as f32),
        );
        if self.resampler.is_none() {
            let pending = std::mem::take(&mut self.pending);
            self.emit(&pending);
            return Ok(());
        }
        while self.pending.len() >= BLOCK {
            let block: Vec<f32> = self.pending.drain(..BLOCK).collect();
            self.resample(Some(&block))?;
        }
        Ok(())
    }

    fn resample(&mut self, block: Option<&[f32]>) -> Result<(), PieceError> {
        let Some(resampler) = self.resampler.as_mut() else {
            return Ok(());
        };
        let output = match block {
            Some(block) if block.len() == BLOCK => resampler.process(&[block], None),
            Some(block) => resampler.process_partial(Some(&[block]), None),
            None => resampler.process_partial(None::<&[&[f32]]>, None),
        }
        .map_err(|e| PieceError::Undecodable(format!("resampling failed ({e})")))?;
        let samples = output.into_iter().next().unwrap_or_default();
        let skipped = self.skip.min(samples.len());
        self.skip -= skipped;
        self.emit(&samples[skipped..]);
        Ok(())
    }

    fn emit(&mut self, samples: &[f32]) {
        self.out.extend(
            samples
                .iter()
                // symphonia scales 16-bit PCM by 1/32768: the inverse gives a WAV back exactly.
                .map(|s| (s * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16),
        );
    }

    fn seconds(&self) -> f64 {
        if self.rate == 0 {
            0.0
        } else {
            self.input_frames as f64 / f64::from(self.rate)
        }
    }

    fn finish(mut self) -> Result<Vec<i16>, PieceError> {
        if self.rate == 0 {
            return Err(PieceError::Undecodable("a recording without sound".into()));
        }
        if self.resampler.is_some() {
            let rest = std::mem::take(&mut self.pending);
            if !rest.is_empty() {
                self.resample(Some(&rest))?;
            }
            // The resampler holds back its delay's worth: flush it, then trim to the length
            // the input had.
            self.resample(None)?;
            let expected =
                (self.input_frames as f64 * f64::from(RATE) / f64::from(self.rate)).round();
            self.out.truncate(expected as usize);
        }
        Ok(self.out)
    }
}

/// Where to cut `samples` into pieces of at most `piece` samples: at the quietest 50 ms in the
/// last quarter before each boundary.
pub fn cuts(samples: &[i16], piece: usize) -> Vec<Range<usize>> {
    let piece = piece.max(4 * FRAME);
    let mut pieces = Vec::new();
    let mut start = 0;
    while samples.len() - start > piece {
        let boundary = start + piece;
        let from = boundary - piece / 4;
        let quietest = (from..boundary - FRAME)
            .step_by(FRAME / 2)
            .min_by_key(|&at| energy(&samples[at..at + FRAME]))
            .unwrap_or(boundary - FRAME);
        let cut = quietest + FRAME / 2;
        pieces.push(start..cut);
        start = cut;
    }
    pieces.push(start..samples.len());
    pieces
}

fn energy(frame: &[i16]) -> u64 {
    frame
        .iter()
        .map(|&s| (i64::from(s) * i64::from(s)) as u64)
        .sum()
}

/// `samples` as a 16-bit mono PCM WAV file at [`RATE`].
pub fn wav(samples: &[i16]) -> Vec<u8> {
    let data = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/documents/speech.wav"
        );
        std::fs::read(path).expect("speech.wav")
    }

    /// A tone at `hz` for `secs` at `rate`, `channels` interleaved.
    fn tone(hz: f32, secs: f32, rate: u32, channels: usize) -> Vec<i16> {
        (0..(secs * rate as f32) as usize)
            .flat_map(|i| {
                let s = (i as f32 * hz * std::f32::consts::TAU / rate as f32).sin();
                std::iter::repeat_n((s * 8_000.0) as i16, channels)
            })
            .collect()
    }

    fn wav_at(samples: &[i16], rate: u32, channels: u16) -> Vec<u8> {
        let mut file = wav(samples);
        file[22..24].copy_from_slice(&channels.to_le_bytes());
        file[24..28].copy_from_slice(&rate.to_le_bytes());
        file[28..32].copy_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
        file[32..34].copy_from_slice(&(2 * channels).to_le_bytes());
        file
    }

    #[test]
    fn a_16_khz_wav_decodes_to_its_own_samples() {
        let file = fixture();
        let samples = decode(file.clone(), "audio/wav", 60).expect("decoded");
        // 6.166 s at 16 kHz; the data chunk follows a 44-byte header.
        assert_eq!(samples.len(), (file.len() - 44) / 2);
        assert_eq!(wav(&samples), file);
    }

    #[test]
    fn an_mp3_decodes_to_the_length_and_loudness_of_its_source() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/documents/speech.mp3"
        );
        let mp3 = std::fs::read(path).expect("speech.mp3");
        let samples = decode(mp3, "audio/mpeg", 60).expect("decoded");
        let source = decode(fixture(), "audio/wav", 60).expect("decoded");
        // lame pads the start and end by some frames: within 0.1 s of the source.
        let drift = samples.len().abs_diff(source.len());
        assert!(drift < 1_600, "{} vs {}", samples.len(), source.len());
        let rms = |s: &[i16]| (energy(s) as f64 / s.len() as f64).sqrt();
        let (ours, theirs) = (rms(&samples), rms(&source));
        assert!((ours / theirs - 1.0).abs() < 0.2, "rms {ours} vs {theirs}");
    }

    #[test]
    fn stereo_44k_is_mixed_and_resampled_to_16k_mono_of_the_same_length() {
        let stereo = tone(440.0, 3.0, 44_100, 2);
        let samples = decode(wav_at(&stereo, 44_100, 2), "audio/wav", 60).expect("decoded");
        assert_eq!(samples.len(), 48_000);
        // The tone survives: the same loudness in the middle as the input had.
        let rms = |s: &[i16]| (energy(s) as f64 / s.len() as f64).sqrt();
        let middle = rms(&samples[16_000..32_000]);
        assert!(
            (middle - 8_000.0 / 2f64.sqrt()).abs() < 300.0,
            "rms {middle}"
        );
    }

    #[test]
    fn too_long_and_undecodable_recordings_are_refused() {
        let long = wav_at(&tone(440.0, 3.0, 16_000, 1), 16_000, 1);
        assert!(matches!(
            decode(long, "audio/wav", 2),
            Err(PieceError::TooLong(2))
        ));
        assert!(matches!(
            decode(b"not audio at all".to_vec(), "audio/mpeg", 60),
            Err(PieceError::Undecodable(_))
        ));
        assert!(!decodable("audio/webm"));
    }

    #[test]
    fn cuts_fall_in_the_silence_before_each_boundary() {
        // 1 s of tone, 0.4 s of silence, repeated: boundaries every 1.5 s land in the silences.
        let mut samples = Vec::new();
        for _ in 0..4 {
            samples.extend(tone(300.0, 1.0, RATE, 1));
            samples.extend(std::iter::repeat_n(0i16, RATE as usize * 2 / 5));
        }
        let pieces = cuts(&samples, RATE as usize * 3 / 2);
        assert_eq!(pieces.first().map(|p| p.start), Some(0));
        assert_eq!(pieces.last().map(|p| p.end), Some(samples.len()));
        for pair in pieces.windows(2) {
            assert_eq!(pair[0].end, pair[1].start, "pieces are contiguous");
        }
        for piece in &pieces[..pieces.len() - 1] {
            assert!(piece.len() <= RATE as usize * 3 / 2);
            let cut = piece.end;
            assert!(
                samples[cut - FRAME / 2..cut + FRAME / 2]
                    .iter()
                    .all(|&s| s == 0),
                "cut at {cut} is not in a silence"
            );
        }
        let short = cuts(&samples[..1000], RATE as usize);
        assert_eq!((short.len(), short[0].clone()), (1, 0..1000));
    }
}
