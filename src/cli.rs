//! The `tollgate` command line: `serve`, `migrate` and the administrative subcommands.
//! Every subcommand reads the same configuration (file + environment). Failures print one
//! line on stderr and exit non-zero.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::app;
use crate::audit::{Context, Outcome};
use crate::config::{Config, Purpose, parse_duration};
use crate::keys::KeyRing;
use crate::store::UserRecord;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Identity and access gateway for AI-powered web apps"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "TOLLGATE_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// The data directory (database file, signing keys, outbox); wins over
    /// TOLLGATE_DATA_DIR and the file's `data_dir`.
    #[arg(long, global = true, value_name = "PATH")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: API, gateway, OIDC provider, AI proxy.
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Grant or revoke roles.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage API keys (`Authorization: Bearer tg_…`).
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Check or export the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage OAuth 2.0 / OpenID Connect clients.
    #[command(subcommand)]
    Client(ClientCommand),
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints {"client_id","client_secret"} once (no secret for
    /// --public). Grants default to authorization_code + refresh_token with redirect
    /// URIs, client_credentials without.
    Add {
        name: String,
        /// Choose the client id (default: generated from the name).
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// Exact redirect URI (repeatable).
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// Where RP-initiated logout may send the browser (repeatable).
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        /// A public client (browser or native app): no secret, PKCE required.
        #[arg(long)]
        public: bool,
        /// authorization_code, refresh_token, client_credentials, the token exchange or
        /// the device code grant (their URNs; repeatable).
        #[arg(long = "grant", value_name = "GRANT")]
        grants: Vec<String>,
        /// A scope beyond openid/profile/email/offline_access the client may ask for
        /// (repeatable); for client_credentials, the scopes its tokens carry.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// A first-party application: users are not asked for consent.
        #[arg(long)]
        skip_consent: bool,
        /// How its ID tokens are signed: RS256 (default) or EdDSA.
        #[arg(long, value_name = "ALG")]
        id_token_alg: Option<String>,
    },
    /// Print every client as JSON lines (never a secret).
    List,
    /// Delete a client: its sessions and tokens stop working at once.
    Delete { id: String },
    /// Give a confidential client a new secret (printed once); the old one stops working.
    RotateSecret { id: String },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain and signed checkpoints; exit 0 when intact, else name the
    /// first bad entry.
    Verify {
        /// `SEQ:HASH` from an earlier run's output, kept outside the database: the entry
        /// at SEQ must still have HASH.
        #[arg(long, value_name = "SEQ:HASH")]
        expect: Option<String>,
    },
    /// Write every entry as JSON lines to standard output, oldest first.
    Export,
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a key for an account; prints the key once (only its hash is stored).
    Add {
        email: String,
        /// Scope the key grants (repeatable; each must be granted by the user's roles).
        /// None: whatever the user's roles grant at the time of use.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Lifetime (`90d`, `12h`); none: until revoked.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// A label to recognise the key by in `apikey list`.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Print an account's keys as JSON lines (never the keys themselves).
    List { email: String },
    /// Revoke a key by id; servers stop accepting it within seconds.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; prints it as JSON.
    Add {
        email: String,
        /// Extra role (repeatable); every account also has role `user`.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Print every account as JSON lines.
    List,
    /// Disable an account and revoke all its sessions.
    Disable { email: String },
    /// Re-enable a disabled account.
    Enable { email: String },
    /// Lift the sign-in lockouts of an account.
    Unlock { email: String },
    /// Remove an account's second factors (authenticator app, recovery codes) and end its
    /// sessions, for someone who lost them.
    ResetMfa { email: String },
}

#[derive(Subcommand)]
enum RoleCommand {
    Grant { email: String, role: String },
    Revoke { email: String, role: String },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a new signing key; older keys stay published until their tokens expire.
    Rotate,
}

/// Parses the command line, runs the command and says how it ended.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let purpose = match cli.command {
        Command::Serve => Purpose::Serve,
        _ => Purpose::Administer,
    };
    let config = match Config::load(cli.config.as_deref(), cli.data_dir.as_deref(), purpose) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    // Only `serve` and `migrate` make an install: any other command run from the wrong
    // directory (or with a mistyped data dir) must not quietly start an empty one.
    if !matches!(cli.command, Command::Serve | Command::Migrate)
        && let Err(e) = app::require_install(&config, cli.config.as_deref())
    {
        return fail(e);
    }
    let log_filter = if matches!(cli.command, Command::Serve) {
        config.log.clone()
    } else {
        "warn".into()
    };
    if let Err(e) = crate::telemetry::init_logging(&log_filter, config.log_format) {
        return fail(e);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("{e:#}")),
    }
}

/// Help and version print as usual; every other argument error is condensed to the one
/// line the interface promises (clap's own message, without the usage block).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!("tollgate: a subcommand is missing (see tollgate --help)");
            return ExitCode::from(2);
        }
        _ => {}
    }
    let rendered = e.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    eprintln!(
        "tollgate: {} (see tollgate --help)",
        message.trim_start_matches("error: ")
    );
    ExitCode::from(2)
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    let msg = e.to_string().replace('\n', " ");
    eprintln!("tollgate: {msg}");
    ExitCode::FAILURE
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => crate::http::server::run(config).await,
        Command::Migrate => {
            let store = app::open_store(&config).await?;
            store.close().await;
            // The key ring and the sealing key too: run once before nodes start on a
            // shared key directory, no two of them race to create a first key, and
            // nodes that mount it read-only find every key there.
            KeyRing::open(&app::keys_dir(&config), config.access_ttl)?;
            crate::secret::Sealer::open(&app::keys_dir(&config))?;
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            let store = app::open_store(&config).await?;
            let (kid, active_from) = KeyRing::rotate(&app::keys_dir(&config))?;
            let entry = Context::cli()
                .entry("keys.rotated", Outcome::Success, None)
                .with("kid", kid.as_str())
                .with("active_from", active_from);
            store.append_audit(&entry).await?;
            store.close().await;
            println!("{}", json!({ "kid": kid, "active_from": active_from }));
            Ok(())
        }
        Command::Audit(cmd) => {
            let store = app::open_store(&config).await?;
            let result = match cmd {
                AuditCommand::Verify { expect } => {
                    let expect = expect.map(|raw| parse_expect(&raw)).transpose()?;
                    let keys = app::keys_dir(&config);
                    match crate::audit::verify::verify_log(&store, &keys, expect).await? {
                        Ok(summary) => {
                            println!("{}", summary.to_json());
                            Ok(())
                        }
                        Err(broken) => Err(anyhow::anyhow!("{broken}")),
                    }
                }
                AuditCommand::Export => export_audit(&store).await,
            };
            store.close().await;
            result
        }
        Command::User(cmd) => {
            let app = app::build(config).await?;
            let id = &app.identity;
            let ctx = Context::cli();
            match cmd {
                UserCommand::Add {
                    email,
                    roles,
                    password_stdin,
                } => {
                    let password = if password_stdin {
                        Some(read_password()?)
                    } else {
                        None
                    };
                    for role in &roles {
                        if !app.config.roles.is_defined(role) {
                            eprintln!(
                                "tollgate: warning: role '{role}' has no [roles.{role}] section; it grants no scopes"
                            );
                        }
                    }
                    print_user(
                        &id.create_user(&email, password.as_deref(), &roles, &ctx)
                            .await?,
                    );
                }
                UserCommand::List => {
                    for u in id.list_users().await? {
                        print_user(&u);
                    }
                }
                UserCommand::Disable { email } => {
                    let user = id.find(&email).await?;
                    print_user(&id.set_disabled(&user.id, true, &ctx).await?)
                }
                UserCommand::ResetMfa { email } => {
                    let user = id.find(&email).await?;
                    // Idempotent, like disable: a second reset changes nothing.
                    if !app.factors.reset(&user, &ctx).await? {
                        eprintln!("tollgate: {email} had no second factor");
                    }
                    print_user(&user)
                }
                UserCommand::Enable { email } => {
                    let user = id.find(&email).await?;
                    print_user(&id.set_disabled(&user.id, false, &ctx).await?)
                }
                UserCommand::Unlock { email } => {
                    let user = id.find(&email).await?;
                    app.sign_in
                        .guard()
                        .unlock(&user.email, &user.id, &ctx)
                        .await?;
                    print_user(&user)
                }
            }
            app.store.close().await;
            Ok(())
        }
        Command::Apikey(cmd) => {
            let app = app::build(config).await?;
            match cmd {
                ApiKeyCommand::Add {
                    email,
                    scopes,
                    expires,
                    name,
                } => {
                    let ttl = expires
                        .map(|raw| {
                            parse_duration(&raw).filter(|d| !d.is_zero()).ok_or_else(|| {
                                anyhow::anyhow!(
                                    "invalid --expires '{raw}': expected a duration like 12h or 90d"
                                )
                            })
                        })
                        .transpose()?;
                    let user = app.identity.find(&email).await?;
                    let (key, _) = app
                        .api_keys
                        .create(&user, &name, &scopes, ttl, &Context::cli())
                        .await?;
                    println!("{key}");
                }
                ApiKeyCommand::List { email } => {
                    let user = app.identity.find(&email).await?;
                    for k in app.api_keys.list(&user.id).await? {
                        println!(
                            "{}",
                            json!({
                                "id": k.id,
                                "name": k.name,
                                "user_id": k.user_id,
                                "scopes": k.scopes.split_whitespace().collect::<Vec<_>>(),
                                "created_at": k.created_at,
                                "expires_at": k.expires_at,
                                "last_used_at": k.last_used_at,
                                "revoked_at": k.revoked_at,
                            })
                        );
                    }
                }
                ApiKeyCommand::Revoke { id } => {
                    if !app.api_keys.revoke(&id, None, &Context::cli()).await? {
                        anyhow::bail!("no live API key with id '{id}'");
                    }
                }
            }
            app.store.close().await;
            Ok(())
        }
        Command::Client(cmd) => {
            let app = app::build(config).await?;
            let clients = &app.oidc.clients;
            let ctx = Context::cli();
            match cmd {
                ClientCommand::Add {
                    name,
                    id,
                    redirect_uris,
                    post_logout_redirect_uris,
                    public,
                    grants,
                    scopes,
                    skip_consent,
                    id_token_alg,
                } => {
                    let spec = crate::oidc::clients::ClientSpec {
                        id_token_signed_response_alg: id_token_alg,
                        id,
                        name,
                        redirect_uris,
                        post_logout_redirect_uris,
                        public,
                        grant_types: grants,
                        scopes,
                        skip_consent,
                    };
                    let (client, secret) = clients.create(spec, &ctx).await?;
                    let mut out = json!({ "client_id": client.id });
                    if let Some(s) = secret {
                        out["client_secret"] = s.into();
                    }
                    println!("{out}");
                }
                ClientCommand::List => {
                    for c in clients.list().await? {
                        println!("{}", c.to_json());
                    }
                }
                ClientCommand::Delete { id } => clients.delete(&id, &ctx).await?,
                ClientCommand::RotateSecret { id } => {
                    let secret = clients.rotate_secret(&id, &ctx).await?;
                    println!("{}", json!({ "client_id": id, "client_secret": secret }));
                }
            }
            app.store.close().await;
            Ok(())
        }
        Command::Role(cmd) => {
            let app = app::build(config).await?;
            let (email, role, granted) = match cmd {
                RoleCommand::Grant { email, role } => (email, role, true),
                RoleCommand::Revoke { email, role } => (email, role, false),
            };
            let found = app.identity.find(&email).await?;
            let user = app
                .identity
                .set_role(&found.id, &role, granted, &Context::cli())
                .await?;
            print_user(&user);
            app.store.close().await;
            Ok(())
        }
    }
}

/// `SEQ:HASH` as printed by an earlier `audit verify` (its `expect` field).
fn parse_expect(raw: &str) -> anyhow::Result<(i64, String)> {
    raw.split_once(':')
        .and_then(|(s, h)| Some((s.parse::<i64>().ok()?, h.to_string())))
        .filter(|(s, h)| *s > 0 && h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "invalid --expect '{raw}': expected SEQ:HASH as printed by audit verify"
            )
        })
}

/// Writes the whole log as JSON lines.
async fn export_audit(store: &crate::store::Store) -> anyhow::Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut pages = crate::audit::Pages::default();
    while let Some(page) = pages.next(store).await? {
        for e in &page {
            let mut v = serde_json::to_value(e)?;
            v["detail"] = serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null);
            writeln!(out, "{v}")?;
        }
    }
    out.flush()?;
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    Ok(password.strip_suffix('\r').unwrap_or(password).to_string())
}

fn print_user(u: &UserRecord) {
    println!("{}", crate::identity::user_json(u));
}
