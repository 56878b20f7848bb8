// sim/harness.cpp: Verilator main for sim/harness.v (module mercury_replay, MERCURY_EXT_CLK).
// Toggles the clock and evaluates until the harness calls $finish; plusargs go to the harness.
#include <memory>

#include "Vmercury_replay.h"
#include "verilated.h"

int main(int argc, char** argv) {
    const std::unique_ptr<VerilatedContext> ctx{new VerilatedContext};
    ctx->commandArgs(argc, argv);
    const std::unique_ptr<Vmercury_replay> top{new Vmercury_replay{ctx.get(), "TOP"}};
    top->clk = 0;
    top->eval();
    while (!ctx->gotFinish()) {
        top->clk = 1;
        top->eval();
        top->clk = 0;
        top->eval();
    }
    top->final();
    return 0;
}
