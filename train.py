"""Train the pagesieve line classifier: python train.py --config configs/cpu.yaml [--set name=value ...]"""
from pagesieve.training import main

if __name__ == "__main__":
    main()
