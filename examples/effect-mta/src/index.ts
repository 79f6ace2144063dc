export * from "./Layers.js"
export * from "./Mta.js"
