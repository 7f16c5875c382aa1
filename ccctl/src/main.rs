use std::process::ExitCode;

use ccctl::cli::{AttestCheck, AttestCommand, Cli, Command, EifCommand, PolicyCommand};
use ccctl::output::{self, CannotRun, Format, Outcome};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::exit(run(cli))
}

fn run(cli: Cli) -> Result<Outcome, CannotRun> {
    let fmt = cli.output;
    if fmt == Format::Junit && !matches!(cli.command, Command::Doctor(_) | Command::Demo(_)) {
        return Err(CannotRun::new("-o junit is only for doctor and demo"));
    }
    match cli.command {
        Command::Doctor(a) => ccctl::doctor::cli::run(*a, fmt),
        Command::Demo(a) => ccctl::demo::run(a, fmt),
        Command::Tui(a) => ccctl::tui::run(*a),
        Command::Rotate(c) => ccctl::rotate::run(c, fmt),
        Command::Eif(EifCommand::Describe { eif_path }) => {
            let d = ccctl::eif::describe_file(&eif_path)?;
            match fmt {
                Format::Json => println!("{}", output::json(&ccctl::eif::nitro_json(&d))),
                Format::Human | Format::Junit => print!("{}", ccctl::eif::human(&d)),
            }
            Ok(if d.signature_ok() {
                Outcome::Ok
            } else {
                Outcome::Finding
            })
        }
        Command::Eif(EifCommand::Measure { files }) => {
            let all = files
                .iter()
                .map(|f| ccctl::eif::describe_file(f))
                .collect::<Result<Vec<_>, _>>()?;
            match fmt {
                Format::Json => println!("{}", output::json(&ccctl::eif::measure_json(&all))),
                Format::Human | Format::Junit => {
                    all.iter().for_each(|d| print!("{}", ccctl::eif::human(d)))
                }
            }
            Ok(if all.iter().all(|d| d.signature_ok()) {
                Outcome::Ok
            } else {
                Outcome::Finding
            })
        }
        Command::Attest(AttestCommand::Verify { file, check }) => {
            let bytes = if file.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                    .map_err(|e| CannotRun::new(format!("cannot read stdin: {e}")))?;
                b
            } else {
                std::fs::read(&file)
                    .map_err(|e| CannotRun::new(format!("cannot read '{}': {e}", file.display())))?
            };
            let doc = ccctl::attest::load(&bytes)
                .map_err(|e| CannotRun::new(format!("'{}': {}", file.display(), e.0)))?;
            report_attestation(&doc, &check, fmt, None)
        }
        Command::Attest(AttestCommand::Fetch {
            url,
            save,
            timeout,
            check,
        }) => {
            let addr = ccctl::http::parse_base(&url).map_err(CannotRun::new)?;
            let nonce: [u8; 32] = rand::random();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CannotRun::new(e.to_string()))?;
            let path = format!("/attestation?nonce={}", hex::encode(nonce));
            let resp = rt
                .block_on(ccctl::http::get(&addr, &path, timeout))
                .map_err(CannotRun::new)?;
            if resp.status != 200 {
                return Err(CannotRun::new(format!(
                    "{url}/attestation answered {}: {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                        .chars()
                        .take(300)
                        .collect::<String>()
                )));
            }
            if let Some(p) = &save {
                std::fs::write(p, &resp.body)
                    .map_err(|e| CannotRun::new(format!("cannot write '{}': {e}", p.display())))?;
            }
            let doc = ccctl::attest::load(&resp.body)?;
            report_attestation(&doc, &check, fmt, Some(&nonce))
        }
        Command::Policy(PolicyCommand::Check(a)) => {
            let input = ccctl::policy::input_from_args(&a)?;
            let rt = output::runtime()?;
            let r = rt.block_on(ccctl::policy::check(input));
            match fmt {
                Format::Json => println!("{}", output::json(&r)),
                Format::Human | Format::Junit => print!("{}", ccctl::policy::human(&r)),
            }
            if r.unreadable() {
                return Err(CannotRun::new(
                    "some holders' policies could not be read (see above)",
                ));
            }
            Ok(
                if r.release_possible && r.worst() != Some(cc_proto::findings::Severity::Error) {
                    Outcome::Ok
                } else {
                    Outcome::Finding
                },
            )
        }
        Command::Enclaves(a) => match ccctl::enclaves::describe(&a.nitro_cli)? {
            Ok(list) => {
                let r = ccctl::enclaves::report(list);
                match fmt {
                    Format::Json => println!("{}", output::json(&r)),
                    Format::Human | Format::Junit => print!("{}", ccctl::enclaves::human(&r)),
                }
                Ok(if r.notes.is_empty() {
                    Outcome::Ok
                } else {
                    Outcome::Finding
                })
            }
            Err(f) => {
                if fmt == Format::Json {
                    println!("{}", output::json(&f));
                }
                Err(CannotRun::new(ccctl::enclaves::failure_human(&f)))
            }
        },
    }
}

fn report_attestation(
    doc: &cc_proto::attestation::SignedDoc,
    check: &AttestCheck,
    fmt: Format,
    nonce: Option<&[u8]>,
) -> Result<Outcome, CannotRun> {
    let root_der = match &check.root {
        Some(p) => {
            let pem = std::fs::read_to_string(p).map_err(|e| {
                CannotRun::new(format!("cannot read --root '{}': {e}", p.display()))
            })?;
            ccctl::attest::pem_der(&pem)
                .map_err(|e| CannotRun::new(format!("--root '{}': {e}", p.display())))?
        }
        None => {
            ccctl::attest::pem_der(ccctl::attest::AWS_NITRO_ROOT_G1_PEM).map_err(CannotRun::new)?
        }
    };
    let mut v = ccctl::attest::verify(doc, &root_der, check.at, &check.expect_pcr, check.all_pcrs);
    if let Some(n) = nonce
        && doc.doc.nonce.as_deref() != Some(n)
        && v.valid
    {
        v.valid = false;
        v.reason =
            Some("the document does not carry the nonce we sent (replayed or not fresh)".into());
    }
    match fmt {
        Format::Json => println!("{}", output::json(&v)),
        Format::Human | Format::Junit => print!("{}", ccctl::attest::human(&v)),
    }
    Ok(if v.valid && v.mismatches() == 0 {
        Outcome::Ok
    } else {
        Outcome::Finding
    })
}
