export * from "./Dns.js"
export * from "./TlsrptLookup.js"
