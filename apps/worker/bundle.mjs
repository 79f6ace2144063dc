/**
 * The shipped worker: one tree-shaken, minified ESM bundle per entry (the `tlsrpt` bin, the worker
 * threads' entries, the `idle` bench and its DNS peer, the collector's `datagram` bench) in
 * dist/bundle, built from the TypeScript sources (`source` condition). Why: V8 keeps the source text
 * of every module it loads for lazy compilation; the tsc build loads ~1,000 modules of effect, @effect/*, undici… whole, a bundle only
 * what is reached, minified (`idle` bench, issue 15: the RSS at start and at rest, docs/design.md#thread-memory).
 * Code shared by entries goes to chunks (splitting), so the embedded default never loads Postgres
 * or the fleet, which are imported dynamically.
 * The thread entries keep their module names: ThreadEntry starts `./<name>.js` next to the calling
 * module, and every chunk lies in this one folder.
 */
import { build } from "esbuild"

const here = (path) => new URL(path, import.meta.url).pathname

await build({
  entryPoints: {
    main: here("src/main.ts"),
    WriterThreadMain: here("../../packages/collector/src/WriterThreadMain.ts"),
    DatagramReceiverMain: here("../../packages/collector/src/DatagramReceiverMain.ts"),
    ComposeWorker: here("../../packages/mail/src/ComposeWorker.ts"),
    DirWriterMain: here("../../packages/mail/src/DirWriterMain.ts"),
    idle: here("bench/idle.ts"),
    // the collector's `datagram` bench on the shipped thread entries (README "Benchmarks")
    datagram: here("../../packages/collector/bench/datagram.ts"),
    IdleDnsPeer: here("bench/IdleDnsPeer.ts")
  },
  outdir: here("dist/bundle"),
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  conditions: ["source"],
  minify: true,
  // error and class names stay readable in logs
  keepNames: true,
  sourcemap: "linked",
  chunkNames: "chunk-[hash]",
  // native addons (and pg's optional one) load from node_modules
  external: ["better-sqlite3", "node-unix-socket", "pg-native"],
  // CommonJS dependencies (nodemailer, mailauth, …) call require for Node's built-in modules
  banner: { js: 'import{createRequire as __cr}from"node:module";const require=__cr(import.meta.url);' },
  logLevel: "warning"
})
