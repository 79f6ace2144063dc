/** The simulation kit moved to `@tlsrpt/testkit/simulation`; this re-export keeps older imports compiling. */
export * from "@tlsrpt/testkit/simulation"
