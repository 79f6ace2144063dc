export * from "./Reporter.js"
export * as ReporterLive from "./ReporterLive.js"
export * as ReporterSchedule from "./ReporterSchedule.js"
export * as RoundPlan from "./RoundPlan.js"
