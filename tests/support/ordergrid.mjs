// Runs the ordergrid binary for the Node test scripts, in the stack's folder (where `publish`
// finds the stack and reads the topic key): `ordergrid(config, args, stdin)` resolves with its
// stdout, or rejects with its exit code and stderr. `config.binary` and `config.stackDir` come
// from the Rust test that started the stack.
import { spawn } from "node:child_process";

export function ordergrid(config, args, stdin) {
  return new Promise((resolve, reject) => {
    const child = spawn(config.binary, args, { cwd: config.stackDir });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`ordergrid ${args.join(" ")} exited with ${code}: ${err}`)),
    );
    child.stdin.end(stdin ?? "");
  });
}
