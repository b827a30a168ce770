//! Tollgate: identity and access gateway for AI-powered web apps.
//!
//! The crate is a library with a thin binary (`src/main.rs`) on top. Domain modules
//! (`identity`, `session`, `authz`) know nothing about HTTP; `http` translates requests
//! into calls on them, and `store` is the only place that speaks SQL.

pub(crate) mod admission;
pub(crate) mod ai;
pub mod app;
pub mod audit;
pub(crate) mod authz;
pub mod clock;
pub mod config;
pub mod error;
pub(crate) mod gateway;
pub mod http;
pub mod identity;
pub mod keys;
pub mod limits;
pub(crate) mod mail;
pub mod oidc;
pub(crate) mod secret;
pub mod session;
pub mod store;
pub mod telemetry;
pub(crate) mod text;
pub(crate) mod ui;
