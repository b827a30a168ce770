//! Tollgate: identity and access gateway for AI-powered web apps.
//!
//! One binary (`src/main.rs` calls [`cli::main`]); the library is private but for what
//! the benchmarks and tests reach directly (the re-exports below). The layout, outside in
//! (a module only uses modules below it; `scripts/module-graph` checks there is no cycle):
//!
//! ```text
//! cli, http          adapters: parse arguments / requests, call the domain once, render
//! app                builds the services from the configuration (no axum)
//! config             composes each domain's section and runs cross-section checks
//! admission          the gateway's one decision: policy, then per-account limits
//! gateway, ai        routes, CORS, forwarded identity / charging, relaying, guards
//! oidc               provider, clients, grants, federation (external sign-in)
//! identity, session  accounts and sign-in rules / sessions, tokens, revocations
//! authz, limits      pure policy decisions / rate limits, lockout counters
//! audit, mail, ui    hash-chained log / outgoing mail / page templates
//! store, outbound    the only SQL / the one outbound HTTP client
//! keys, secret, clock, text, error, telemetry   leaves
//! ```

pub(crate) mod admission;
pub(crate) mod ai;
pub(crate) mod app;
pub(crate) mod audit;
pub(crate) mod authz;
pub mod cli;
pub(crate) mod clock;
pub(crate) mod config;
pub(crate) mod error;
pub(crate) mod gateway;
pub(crate) mod http;
pub(crate) mod identity;
pub(crate) mod keys;
pub(crate) mod limits;
pub(crate) mod mail;
pub(crate) mod oidc;
pub(crate) mod outbound;
pub(crate) mod secret;
pub(crate) mod session;
pub(crate) mod store;
pub(crate) mod telemetry;
pub(crate) mod text;
pub(crate) mod ui;

// `bench/verify.rs`: the access-token verifier and the revocation set it consults.
pub use error::Error;
pub use keys::{Family as KeyFamily, KeyRing};
pub use session::{AccessTokens, RevocationSet, TokenSubject};

// `bench/limits.rs`: the rate limiter, its rules, and the bare GCRA as its baseline.
pub use limits::rules::{Per, RuleSpec, merge as merge_rules};
pub use limits::signin::SignInPolicy;
pub use limits::{Limiter, LimitsConfig, RedisFailure, gcra};

// `tests/store_guards.rs`: the store's race guards, called directly.
pub use audit::{Context as AuditContext, Outcome as AuditOutcome};
pub use store::counters::{CounterTake, SharedCounters};
pub use store::{NewSession, NewUser, Store, UserQuery, UserState};
