//! The `feedbridge` binary: parse the CLI, run it, map the error to an exit code
//! (0 ok, 1 runtime failure, 2 usage or invalid configuration).

use std::process::ExitCode;

use clap::Parser;
use feedbridge::cli::{run, Cli, ConfigFailure};

fn main() -> ExitCode {
    let cli = Cli::parse();
    feedbridge::malloc::tune();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("feedbridge: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("feedbridge: {e:#}");
            if e.downcast_ref::<ConfigFailure>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
