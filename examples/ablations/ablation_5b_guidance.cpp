// examples/ablations/ablation_5b_guidance.cpp - Table 5b, the type of guidance: token-wise, global, both.
// One row per line of the paper's table; the driver (ablation_driver.hpp) pre-trains each with one
// shared budget, evaluates k-NN and the linear probe, and prints the table beside the paper's numbers.
//
//   ablation_5b_guidance --list                    the rows and their ids
//   ablation_5b_guidance                           every row, default budget (docs/ablations.md: time per row)
//   ablation_5b_guidance --resume                  a killed run continues with the rows not yet done
#include "ablation_driver.hpp"

namespace {
using namespace lcmae::ablations;

template <class Backbone>
struct Table {
    static constexpr std::string_view id = "5b", title = "(b) Type of guidance", case_columns = "Case";
    static constexpr bool paper_lin = true;  // the paper reports linear probing for this table
    static constexpr int paper_epochs = 400;
    using Rows = lcmae::apps::AblationRows<Backbone, lcmae::apps::MainJobRecipe>;
    using Lines = std::tuple<
        Line<typename Rows::MaeRrc, "None", Paper{82.8, 61.5}>,
        Line<typename Rows::TokenWise, "Token-wise guidance", Paper{83.2, 64.1}>,
        Line<typename Rows::LcmaeDefault, "Global guidance", Paper{83.5, 67.9}>,
        Line<typename Rows::TokenWiseAndGlobal, "Token-wise + Global", Paper{83.1, 66.6}>>;
};
}  // namespace

int main(int argc, char** argv) { return run_table<Table>(argc, argv); }
