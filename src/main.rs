//! `ordergrid`: the command line is [`ordergrid::cli`].

fn main() -> std::process::ExitCode {
    ordergrid::cli::main()
}
