export * from "./ResultStore.js"
export * as Migrations from "./Migrations.js"
export * as SqlResultStore from "./SqlResultStore.js"
