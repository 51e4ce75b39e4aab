//! The Cync account API, for a first run without any other tool: log in with the emailed code,
//! read the account's homes, devices and rooms, and write them as the bridge's device file.
//!
//! Exists because a bridge that knows only what the wire says shows generic on/off entities;
//! the names, rooms and device types live in the account. Owns the HTTP client ([`http`]), the
//! calls ([`client`]), their errors as sentences for people ([`error`]), the conversion to a
//! device file ([`export`]) and writing it ([`save`]). Must never keep the password, never log
//! the code or the token, and never write a device file that lists nothing.

pub mod client;
pub mod error;
pub mod export;
pub mod http;
pub mod save;
pub mod settings;
pub mod wire;

pub use client::{Account, CloudClient, CloudHome};
pub use error::{CloudError, Step};
pub use export::{device_file, render, DeviceFile, Summary};
pub use settings::{ApiUrl, CloudSettings};
pub use wire::Token;
