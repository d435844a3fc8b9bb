from robust_mix.launch import main

main()
