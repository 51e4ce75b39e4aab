//! capture (work in progress)
