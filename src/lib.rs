//! Tollgate: identity and access gateway for AI-powered web apps.
//!
//! The crate is a library with a thin binary (`src/main.rs`) on top. Domain modules
//! (`identity`, `session`, `authz`) know nothing about HTTP; `http` translates requests
//! into calls on them, and `store` is the only place that speaks SQL.

pub mod admission;
pub mod ai;
pub mod app;
pub mod audit;
pub mod authz;
pub mod clock;
pub mod config;
pub mod error;
pub mod gateway;
pub mod http;
pub mod identity;
pub mod keys;
pub mod limits;
pub mod mail;
pub mod oidc;
pub mod secret;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod ui;
