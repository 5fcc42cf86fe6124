// Self-check of the mechanism: this fails to compile for the WRONG reason (a missing header), so
// a compile-fail test on it with the regex "divisible by Heads" must itself fail.
#include <lcmae/vit/no_such_header.hpp>

int main() { return 0; }
