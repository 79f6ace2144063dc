export * from "./ResultStore.js"
