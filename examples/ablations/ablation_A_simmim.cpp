// examples/ablations/ablation_A_simmim.cpp - Table A (appendix B.1), SimMIM and LC-SimMIM; the paper reports fine-tuning only (100 epochs).
// One row per line of the paper's table; the driver (ablation_driver.hpp) pre-trains each with one
// shared budget, evaluates k-NN and the linear probe, and prints the table beside the paper's numbers.
//
//   ablation_A_simmim --list                    the rows and their ids
//   ablation_A_simmim                           every row, default budget (docs/ablations.md: time per row)
//   ablation_A_simmim --resume                  a killed run continues with the rows not yet done
#include "ablation_driver.hpp"

namespace {
using namespace lcmae::ablations;

template <class Backbone>
struct Table {
    static constexpr std::string_view id = "A", title = "Global guidance in SimMIM", case_columns = "Method";
    static constexpr bool paper_lin = false;  // the paper reports linear probing for this table
    static constexpr int paper_epochs = 100;
    using Rows = lcmae::apps::AblationRows<Backbone, lcmae::apps::MainJobRecipe>;
    using Lines = std::tuple<
        Line<typename Rows::SimMim, "SimMIM", Paper{81.6}>,
        Line<typename Rows::LcSimMim, "LC-SimMIM", Paper{81.8}>>;
};
}  // namespace

int main(int argc, char** argv) { return run_table<Table>(argc, argv); }
