// examples/ablations/ablation_5d_pooled_tokens.cpp - Table 5d, the tokens pooled for guidance: CLS or the visible tokens.
// One row per line of the paper's table; the driver (ablation_driver.hpp) pre-trains each with one
// shared budget, evaluates k-NN and the linear probe, and prints the table beside the paper's numbers.
//
//   ablation_5d_pooled_tokens --list                    the rows and their ids
//   ablation_5d_pooled_tokens                           every row, default budget (docs/ablations.md: time per row)
//   ablation_5d_pooled_tokens --resume                  a killed run continues with the rows not yet done
#include "ablation_driver.hpp"

namespace {
using namespace lcmae::ablations;

template <class Backbone>
struct Table {
    static constexpr std::string_view id = "5d", title = "(d) Tokens for guidance", case_columns = "Case";
    static constexpr bool paper_lin = true;  // the paper reports linear probing for this table
    static constexpr int paper_epochs = 400;
    using Rows = lcmae::apps::AblationRows<Backbone, lcmae::apps::MainJobRecipe>;
    using Lines = std::tuple<
        Line<typename Rows::MaeRrc, "None", Paper{82.8, 61.5}>,
        Line<typename Rows::ClsToken, "w/ CLS token", Paper{83.2, 71.0}>,
        Line<typename Rows::LcmaeDefault, "w/ visual tokens (VTs)", Paper{83.5, 67.9}>>;
};
}  // namespace

int main(int argc, char** argv) { return run_table<Table>(argc, argv); }
