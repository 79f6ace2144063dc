export * as ReportKey from "./ReportKey.js"
export * as ReportRound from "./ReportRound.js"
