//! The cross-service suite: one test binary (each test file would be a
//! separate slow link). Tests start their own broker, databases and
//! processes, so they are independent and run in parallel.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod dev_mode;
mod events;
mod lifecycle;
mod notification;
mod otp;
mod registration;
mod saml;
mod startup;
