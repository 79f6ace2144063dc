/** `@tlsrpt/testkit/simulation`: the TestClock simulation kit (see Simulation.ts). */
export * from "./Simulation.js"
