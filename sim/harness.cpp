// sim/harness.cpp: Verilator main for sim/harness.v (module mercury_replay, MERCURY_EXT_CLK).
// Toggles the clock and evaluates until the harness calls $finish; plusargs go to the harness.
// Time advances 1 ns a half period (posedge n at 2n-1 ns), as Icarus's `always #1 clk = ~clk`.
// The tracing build (sim/waves.py, define MERCURY_TRACE) writes an FST to +waves=FILE at every
// edge where the harness's trace_on output is high.
#include <cstring>
#include <memory>

#include "Vmercury_replay.h"
#include "verilated.h"
#ifdef MERCURY_TRACE
#include "verilated_fst_c.h"
#endif

int main(int argc, char** argv) {
    const std::unique_ptr<VerilatedContext> ctx{new VerilatedContext};
    ctx->commandArgs(argc, argv);
#ifdef MERCURY_TRACE
    const char* waves = ctx->commandArgsPlusMatch("waves=");
    const bool tracing = waves && *waves;
    if (tracing) ctx->traceEverOn(true);
#endif
    const std::unique_ptr<Vmercury_replay> top{new Vmercury_replay{ctx.get(), "TOP"}};
#ifdef MERCURY_TRACE
    std::unique_ptr<VerilatedFstC> tfp;
    if (tracing) {
        tfp.reset(new VerilatedFstC);
        top->trace(tfp.get(), 99);
        tfp->open(waves + std::strlen("+waves="));
    }
#define DUMP() \
    if (tfp && top->trace_on) tfp->dump(ctx->time())
#else
#define DUMP()
#endif
    top->clk = 0;
    top->eval();
#ifdef MERCURY_TRACE
    if (tfp) tfp->dump(ctx->time());  // time 0, always: a window never opened still gives a valid file
#endif
    while (!ctx->gotFinish()) {
        ctx->timeInc(1);
        top->clk = 1;
        top->eval();
        DUMP();
        ctx->timeInc(1);
        top->clk = 0;
        top->eval();
        DUMP();
    }
    top->final();
#ifdef MERCURY_TRACE
    if (tfp) tfp->close();
#endif
    return 0;
}
