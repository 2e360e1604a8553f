//! Argus: an AI imaging node. It receives DICOM studies (PS3.4 Storage, PS3.18 STOW-RS), runs
//! ONNX models on them, and returns findings as DICOM Structured Reports (PS3.16 TID 1500) and
//! secondary captures, through a durable outbox.
//!
//! The modules follow the data's path: [`receive`] and [`store`] take instances in and keep
//! them safe; later stages assemble studies, route them to models, prepare pixels, infer,
//! explain, report and send.

#![forbid(unsafe_code)]

pub mod admin;
pub mod analysis;
pub mod config;
pub mod dimse;
pub mod engines;
pub mod explain;
pub mod findings;
pub mod infer;
pub mod metrics;
pub mod model;
pub mod node;
pub mod pipeline;
pub mod prepare;
pub mod receive;
pub mod report;
pub mod send;
pub mod store;
pub mod uid;
