//! Network-backed implementations of the actors' ports, one file each. Only `startup` builds
//! them; the HTTP layer never touches them.

pub mod browser;
pub mod browser_proxy;
pub mod chroma;
pub mod gemini;
pub mod http_fetch;
pub mod llm;
pub mod local_model;
pub mod onnx_model;
pub mod openai;
pub mod redis;
pub mod redis_jobs;
pub mod redis_lexical;
pub mod remote;
pub mod ssrf;
pub mod static_model;
pub mod transcribe;
pub mod whisper_sidecar;
