/**
 * Two independent DKIM verifiers for the signing tests: mailauth's (Node) and dkimpy's (Python,
 * Debian's `python3-dkim`, which `.ci/run` installs). Signing is ours (src/DkimSigner.ts), so every
 * signature is checked by code we did not write, twice.
 */
import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { Effect } from "effect"
import { dkimVerify } from "mailauth/lib/dkim/verify.js"

export type Verdict = "pass" | "fail"

/** mailauth's `resolver` option: answers the `<selector>._domainkey.<domain>` TXT queries. */
export const resolverFor =
  (records: ReadonlyMap<string, string>) =>
  async (name: string, rrtype: string): Promise<Array<Array<string>>> => {
    const record = records.get(name.replace(/\.$/, "").toLowerCase())
    if (rrtype !== "TXT" || record === undefined) {
      throw Object.assign(new Error(`no ${rrtype} record for ${name}`), { code: "ENOTFOUND" })
    }
    return [[record]]
  }

/** mailauth: one verdict per signature, in header order. */
export const verifyMailauth = (raw: Uint8Array | string, records: ReadonlyMap<string, string>, now: number) =>
  Effect.promise(() =>
    dkimVerify(typeof raw === "string" ? raw : Buffer.from(raw), {
      resolver: resolverFor(records),
      curTime: new Date(now + 60_000)
    })
  ).pipe(Effect.map((r) => r.results.map((x) => (x.status.result === "pass" ? "pass" : "fail") as Verdict)))

// dkimpy checks each signature of each message (JSON list of latin1 strings on stdin) by index,
// as a TLS report. dkimpy compares `s=` as one whole value, so it cannot use the `s=email:tlsrpt`
// record we publish (docs/design.md#dkim-service-type); it is given the record without `s=`, which
// RFC 6376 §3.6.1 reads as `*`, and checks in non-strict TLSRPT mode.
const DKIMPY = `
import sys, json, re, dkim
records = json.loads(sys.argv[1])
def dnsfunc(name, timeout=5):
    r = records.get(name.decode() if isinstance(name, bytes) else name)
    return re.sub(r"(^|;)\\s*s=[^;]*", "", r).encode() if r is not None else None
def check(msg):
    d = dkim.DKIM(msg, tlsrpt=True)
    n = sum(1 for line in msg.split(b"\\r\\n\\r\\n")[0].split(b"\\r\\n") if line.lower().startswith(b"dkim-signature:"))
    return ["pass" if d.verify(idx=i, dnsfunc=dnsfunc) else "fail" for i in range(n)]
print(json.dumps([check(m.encode("latin1")) for m in json.load(sys.stdin)]))
`

// Debian's interpreter: a pyenv/venv python3 first on PATH does not see python3-dkim.
const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3"

/** dkimpy, one process for many messages: per message one verdict per signature, in header order. */
export const verifyDkimpyAll = (raws: ReadonlyArray<Uint8Array | string>, records: ReadonlyMap<string, string>) =>
  Effect.async<ReadonlyArray<ReadonlyArray<Verdict>>, Error>((resume) => {
    const names = Object.fromEntries([...records].map(([k, v]) => [`${k}.`, v]))
    const child = execFile(PYTHON, ["-c", DKIMPY, JSON.stringify(names)], (err, stdout, stderr) => {
      if (err !== null) resume(Effect.fail(new Error(`dkimpy (Debian python3-dkim) failed: ${stderr || err.message}`)))
      else resume(Effect.succeed(JSON.parse(stdout) as ReadonlyArray<ReadonlyArray<Verdict>>))
    })
    const texts = raws.map((r) => (typeof r === "string" ? r : Buffer.from(r).toString("latin1")))
    child.stdin?.end(JSON.stringify(texts))
  })

/** dkimpy on one message. Fails loudly when python3-dkim is missing. */
export const verifyDkimpy = (raw: Uint8Array | string, records: ReadonlyMap<string, string>) =>
  Effect.map(verifyDkimpyAll([raw], records), (all) => all[0]!)
