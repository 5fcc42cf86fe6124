// examples/ablations/ablation_5a_loss.cpp - Table 5a, the guidance loss: none (MAE), InfoNCE, smoothed l1, cosine.
// One row per line of the paper's table; the driver (ablation_driver.hpp) pre-trains each with one
// shared budget, evaluates k-NN and the linear probe, and prints the table beside the paper's numbers.
//
//   ablation_5a_loss --list                    the rows and their ids
//   ablation_5a_loss                           every row, default budget (docs/ablations.md: time per row)
//   ablation_5a_loss --resume                  a killed run continues with the rows not yet done
#include "ablation_driver.hpp"

namespace {
using namespace lcmae::ablations;

template <class Backbone>
struct Table {
    static constexpr std::string_view id = "5a", title = "(a) Loss function", case_columns = "Case";
    static constexpr bool paper_lin = true;  // the paper reports linear probing for this table
    static constexpr int paper_epochs = 400;
    using Rows = lcmae::apps::AblationRows<Backbone, lcmae::apps::MainJobRecipe>;
    using Lines = std::tuple<
        Line<typename Rows::MaeRrc, "None", Paper{82.8, 61.5}>,
        Line<typename Rows::InfoNce, "InfoNCE", Paper{83.0, 66.7}>,
        Line<typename Rows::SmoothL1, "Smoothed l1", Paper{83.2, 60.2}>,
        Line<typename Rows::LcmaeDefault, "Cosine distance (Cos)", Paper{83.5, 67.9}>>;
};
}  // namespace

int main(int argc, char** argv) { return run_table<Table>(argc, argv); }
