// examples/ablations/ablation_5e_guided_tokens.cpp - Table 5e, the guided tokens: visible only, or visible and mask tokens.
// One row per line of the paper's table; the driver (ablation_driver.hpp) pre-trains each with one
// shared budget, evaluates k-NN and the linear probe, and prints the table beside the paper's numbers.
//
//   ablation_5e_guided_tokens --list                    the rows and their ids
//   ablation_5e_guided_tokens                           every row, default budget (docs/ablations.md: time per row)
//   ablation_5e_guided_tokens --resume                  a killed run continues with the rows not yet done
#include "ablation_driver.hpp"

namespace {
using namespace lcmae::ablations;

template <class Backbone>
struct Table {
    static constexpr std::string_view id = "5e", title = "(e) Guided tokens", case_columns = "Case";
    static constexpr bool paper_lin = true;  // the paper reports linear probing for this table
    static constexpr int paper_epochs = 400;
    using Rows = lcmae::apps::AblationRows<Backbone, lcmae::apps::MainJobRecipe>;
    using Lines = std::tuple<
        Line<typename Rows::MaeRrc, "None", Paper{82.8, 61.5}>,
        Line<typename Rows::VisibleAndMask, "w/ visible and mask tokens", Paper{83.0, 67.2}>,
        Line<typename Rows::LcmaeDefault, "w/ visible tokens only", Paper{83.5, 67.9}>>;
};
}  // namespace

int main(int argc, char** argv) { return run_table<Table>(argc, argv); }
