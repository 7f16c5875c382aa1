use std::process::ExitCode;

use ccctl::cli::{Cli, Command, EifCommand};
use ccctl::output::{self, CannotRun, Format, Outcome};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::exit(run(cli))
}

fn run(cli: Cli) -> Result<Outcome, CannotRun> {
    let fmt = cli.output;
    match cli.command {
        Command::Eif(EifCommand::Describe { eif_path }) => {
            let d = ccctl::eif::describe_file(&eif_path)?;
            match fmt {
                Format::Json => println!("{}", output::json(&ccctl::eif::nitro_json(&d))),
                Format::Human => print!("{}", ccctl::eif::human(&d)),
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
                Format::Human => all.iter().for_each(|d| print!("{}", ccctl::eif::human(d))),
            }
            Ok(if all.iter().all(|d| d.signature_ok()) {
                Outcome::Ok
            } else {
                Outcome::Finding
            })
        }
        Command::Enclaves(a) => match ccctl::enclaves::describe(&a.nitro_cli)? {
            Ok(list) => {
                let r = ccctl::enclaves::report(list);
                match fmt {
                    Format::Json => println!("{}", output::json(&r)),
                    Format::Human => print!("{}", ccctl::enclaves::human(&r)),
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
