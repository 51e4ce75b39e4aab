//! device (work in progress)
