use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use containment_chamber_enclave::config::Config;
use containment_chamber_enclave::server::{self, ServeError};

#[derive(Parser)]
#[command(
    name = "containment-chamber-enclave",
    version,
    about = "The signer inside the enclave: unseals a master key from the key holders' KMS \
             shares, signs, and reports its state on /status and /metrics.",
    after_help = "Environment: PRODUCTION=true refuses the software platform; CC_PLATFORM, \
                  CC_THRESHOLD, CC_SHARES_FILE, CC_KEYSTORE_FILE, CC_LISTEN_API, \
                  CC_LISTEN_METRICS, CC_LOGS_TARGET, CC_KMS_TIMEOUT_MS override the config \
                  file. AWS credentials and AWS_ENDPOINT_URL_KMS as for any AWS SDK.\n\
                  Exit status: 0 stopped cleanly, 1 failed while running, 2 refused to start."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the signer.
    Serve {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Generate a master key, split it among the holders, encrypt each share with its
    /// holder's KMS key; optionally generate validator keys. Prints public keys only.
    Init {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "N", default_value_t = 0)]
        validator_keys: usize,
        /// Replace an existing share file.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = |k: &str| std::env::var(k).ok();
    let production = env("PRODUCTION").is_some_and(|v| v == "true");
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let (path, result) = match cli.command {
        Command::Serve { config } => {
            let cfg = match Config::load(&config, &env) {
                Ok(c) => c,
                Err(e) => return usage(e),
            };
            (
                config,
                rt.block_on(server::serve(cfg, production)).map(|_| None),
            )
        }
        Command::Init {
            config,
            validator_keys,
            force,
        } => {
            let cfg = match Config::load(&config, &env) {
                Ok(c) => c,
                Err(e) => return usage(e),
            };
            (
                config,
                rt.block_on(server::init(&cfg, validator_keys, force))
                    .map(Some),
            )
        }
    };
    match result {
        Ok(Some(report)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(ServeError::Refused(m)) => {
            eprintln!("error: {m}\n  config: {}", path.display());
            ExitCode::from(2)
        }
        Err(ServeError::Runtime(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(1)
        }
    }
}

fn usage(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}
