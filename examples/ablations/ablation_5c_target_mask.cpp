// examples/ablations/ablation_5c_target_mask.cpp - Table 5c, the masking ratio of the EMA target's view: 0, 0.5, 0.75.
// One row per line of the paper's table; the driver (ablation_driver.hpp) pre-trains each with one
// shared budget, evaluates k-NN and the linear probe, and prints the table beside the paper's numbers.
//
//   ablation_5c_target_mask --list                    the rows and their ids
//   ablation_5c_target_mask                           every row, default budget (docs/ablations.md: time per row)
//   ablation_5c_target_mask --resume                  a killed run continues with the rows not yet done
#include "ablation_driver.hpp"

namespace {
using namespace lcmae::ablations;

template <class Backbone>
struct Table {
    static constexpr std::string_view id = "5c", title = "(c) Target's masking ratio", case_columns = "Case | Mask ratio";
    static constexpr bool paper_lin = true;  // the paper reports linear probing for this table
    static constexpr int paper_epochs = 400;
    using Rows = lcmae::apps::AblationRows<Backbone, lcmae::apps::MainJobRecipe>;
    using Lines = std::tuple<
        Line<typename Rows::MaeRrc, "None | -", Paper{82.8, 61.5}>,
        Line<typename Rows::LcmaeDefault, "Global guidance | 0", Paper{83.5, 67.9}>,
        Line<typename Rows::TargetMask050, "Global guidance | 0.5", Paper{82.6, 63.2}>,
        Line<typename Rows::TargetMask075, "Global guidance | 0.75", Paper{82.5, 63.8}>>;
};
}  // namespace

int main(int argc, char** argv) { return run_table<Table>(argc, argv); }
