export * as HttpSink from "./HttpSink.js"
export * as SmtpSink from "./SmtpSink.js"
export * as DnsServer from "./DnsServer.js"
export * as Seed from "./Seed.js"
