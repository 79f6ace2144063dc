/**
 * The worker's modules, for embedding the same composition in another Effect program (the bin is
 * `main.ts`).
 */
export * as Admin from "./Admin.js"
export * as Config from "./Config.js"
export * as Layers from "./Layers.js"
export * as Metrics from "./Metrics.js"
export * as Worker from "./Worker.js"
