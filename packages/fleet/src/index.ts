export * as ReportKey from "./ReportKey.js"
export * as ReportRound from "./ReportRound.js"
export * as ClusterStatus from "./ClusterStatus.js"
export * as FleetCluster from "./FleetCluster.js"
