#!/bin/bash
# Turns lcmae_pretrain's progress lines ("epoch E  step S  loss L (mim M, gg G)  lr R  X images/s  T min")
# into JSON lines {"epoch":E,"step":S,"loss":L,"mim":M,"gg":G,"lr":R,"images_per_s":X,"elapsed_min":T}.
awk '/^epoch [0-9]+ +step/ { gsub(/[(),]/, " "); printf("{\"epoch\": %s, \"step\": %s, \"loss\": %s, \"mim\": %s, \"gg\": %s, \"lr\": %s, \"images_per_s\": %s, \"elapsed_min\": %s}\n", $2, $4, $6, $8, $10, $12, $13, $15) }' "$1"
