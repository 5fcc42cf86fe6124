// examples/ablations/ablation_B_alpha.cpp - Table B (appendix B.2), the weight alpha of the guidance loss.
// One row per line of the paper's table; the driver (ablation_driver.hpp) pre-trains each with one
// shared budget, evaluates k-NN and the linear probe, and prints the table beside the paper's numbers.
//
//   ablation_B_alpha --list                    the rows and their ids
//   ablation_B_alpha                           every row, default budget (docs/ablations.md: time per row)
//   ablation_B_alpha --resume                  a killed run continues with the rows not yet done
#include "ablation_driver.hpp"

namespace {
using namespace lcmae::ablations;

template <class Backbone>
struct Table {
    static constexpr std::string_view id = "B", title = "Loss balancing (alpha)", case_columns = "alpha";
    static constexpr bool paper_lin = true;  // the paper reports linear probing for this table
    static constexpr int paper_epochs = 400;
    using Rows = lcmae::apps::AblationRows<Backbone, lcmae::apps::MainJobRecipe>;
    using Lines = std::tuple<
        Line<typename Rows::Alpha010, "0.1", Paper{83.2, 70.7}>,
        Line<typename Rows::LcmaeDefault, "0.25", Paper{83.5, 67.9}>,
        Line<typename Rows::Alpha050, "0.5", Paper{83.4, 70.1}>,
        Line<typename Rows::Alpha100, "1.0", Paper{82.9, 63.6}>>;
};
}  // namespace

int main(int argc, char** argv) { return run_table<Table>(argc, argv); }
