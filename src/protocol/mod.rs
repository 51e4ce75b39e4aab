//! protocol (work in progress)
