//! The credential layer: TLS material, pinning, secrets and the keystore, shared by every
//! output and by the Lumberjack receiver input.

pub mod secret;

pub use secret::Secret;
