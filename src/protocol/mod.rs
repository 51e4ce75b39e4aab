//! The Cync LAN protocol as pure data transformations: bytes in, typed values out, and back.
//!
//! Owns: the packet header and type table, the 0x7E frame (checksum, escaping), typed readers
//! for state reports and status records, encoders for every command and reply, and the stream
//! framer. Must never: do I/O, log, allocate on the hot decode path, or panic on any input
//! (property tests and a fuzz target hold it to that). What the bytes mean, and the captures
//! that show it, is written up in `docs/protocol.md`; comments cite its headings as
//! `docs/protocol.md#heading`.

pub mod command;
pub mod content;
pub mod encode;
pub mod error;
pub mod frame;
pub mod framer;
pub mod packet;
pub mod seq;
pub mod time;
pub mod types;

pub use command::{Command, LightColor};
pub use content::{FrameContent, InfoContent, LightState, MeshRecord, StateReport, StatusRecord};
pub use error::{DecodeError, FrameError, FramingError};
pub use frame::{Frame, FrameDir, FrameSpec, Stuffing};
pub use framer::Framer;
pub use packet::{decode, Framed, Hello, Packet, MAX_BODY_LEN};
pub use seq::{Seq, SeqAllocator};
pub use time::ClockTime;
pub use types::{MsgId, PacketType, PeerId};
