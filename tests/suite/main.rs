//! The black-box suite, one test binary: every file here is one concern (accounts,
//! gateway, OIDC, AI, …), each run against the real `tollgate` binary through the harness
//! in `tests/common` (server, sandboxed databases, browser, mail, mock upstreams).
//! Run one concern with `cargo test --test suite <file>::`.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod accounts;
mod admin;
mod agents;
mod ai;
mod ai_quota;
mod ai_sdks;
mod audit;
mod browser;
mod browser_agents;
mod browser_console;
mod cli;
mod connections;
mod console;
mod fanout;
mod faults;
mod faults_nodes;
mod federation;
mod forward_auth;
mod gateway;
mod gateway_auth;
mod interop;
mod limits;
mod metrics;
mod mfa;
mod oidc;
mod oidc_admin;
mod oidc_services;
mod packaging;
mod pages;
mod passkeys;
mod readme;
mod recovery;
mod refresh;
mod robustness;
mod step_up;
mod store_guards;
mod token_algs;
mod tokens;
