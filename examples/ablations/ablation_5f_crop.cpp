// examples/ablations/ablation_5f_crop.cpp - Table 5f, the crop that makes the views: random resized (RRC) or simple resized (SRC), MAE and LC-MAE.
// One row per line of the paper's table; the driver (ablation_driver.hpp) pre-trains each with one
// shared budget, evaluates k-NN and the linear probe, and prints the table beside the paper's numbers.
//
//   ablation_5f_crop --list                    the rows and their ids
//   ablation_5f_crop                           every row, default budget (docs/ablations.md: time per row)
//   ablation_5f_crop --resume                  a killed run continues with the rows not yet done
#include "ablation_driver.hpp"

namespace {
using namespace lcmae::ablations;

template <class Backbone>
struct Table {
    static constexpr std::string_view id = "5f", title = "(f) View discrepancy", case_columns = "Method | Views";
    static constexpr bool paper_lin = true;  // the paper reports linear probing for this table
    static constexpr int paper_epochs = 400;
    using Rows = lcmae::apps::AblationRows<Backbone, lcmae::apps::MainJobRecipe>;
    using Lines = std::tuple<
        Line<typename Rows::MaeRrc, "MAE | RRC", Paper{82.8, 61.5}>,
        Line<typename Rows::MaeSrc, "MAE | SRC", Paper{82.5, 64.2}>,
        Line<typename Rows::LcmaeRrc, "LC-MAE | RRC", Paper{83.4, 67.1}>,
        Line<typename Rows::LcmaeDefault, "LC-MAE | SRC", Paper{83.5, 67.9}>>;
};
}  // namespace

int main(int argc, char** argv) { return run_table<Table>(argc, argv); }
