//! telemetry (work in progress)
